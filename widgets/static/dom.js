// DOM helpers every sftlab front end uses. widgets/_common.py puts this file in front of each
// widget's ES module (anywidget modules load from blobs and cannot import a sibling file).

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function whenVisible(node, draw) {
  // plotly sizes a chart from its container, so draw it once the container is on screen
  // (a hidden tab has no size); observing stops after the first time
  const seen = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) {
      seen.disconnect();
      draw();
    }
  });
  seen.observe(node);
  return () => seen.disconnect();
}

function drawFigures(host, model, figures) {
  // plotly FigureWidgets held in traits, each drawn into its node once visible through
  // anywidget's host; figures: [[trait, node, what]]. Returns the clean-up for render().
  if (!host) return undefined;
  const draw = ([trait, node, what]) => (model.get(trait) ? whenVisible(node, () => host.getWidget(model.get(trait))
    .then((w) => w.render({ el: node }))
    .catch((e) => { node.textContent = `(${what} unavailable: ${e.message})`; })) : () => {});
  const unwatch = figures.map(draw);
  return () => unwatch.forEach((f) => f());
}

function keepKeys(el) {
  // Keys typed in a widget stay in it: JupyterLab's notebook shortcuts (Shift+Enter runs the
  // cell, Enter and Escape switch modes, A/B/D/X edit cells) never see them, and Enter makes a
  // new line in a text box. JupyterLab listens for keys on the document, after they bubble up
  // from here; the attribute tells its shortcut matcher to skip this subtree too.
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  for (const type of ["keydown", "keyup", "keypress"]) el.addEventListener(type, (e) => e.stopPropagation());
}
