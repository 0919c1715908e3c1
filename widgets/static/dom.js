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

function diffView(pieces, against = "the base reply") {
  // (the Compare tab's replies, the timeline's steps, the Experiments tab's two runs)
  // The reply as it reads, words it adds over `against` marked green. Words that replaced
  // others show what they replaced on hover; where words were only dropped, a small red mark
  // whose tooltip (and the line below) shows them. Deleted and added words are never
  // interleaved, so even a reply that changed completely reads cleanly.
  const dropped = [];
  const body = pieces.map(([op, text], i) => {
    if (op === "equal") return text;
    const next = pieces[i + 1], prev = pieces[i - 1];
    if (op === "insert") {
      const replaced = prev && prev[0] === "delete" ? prev[1] : next && next[0] === "delete" ? next[1] : null;
      return h("ins", { class: "sftlab-ins", title: replaced ? `in place of: ${replaced.trim()}` : "added" }, text);
    }
    dropped.push(text.trim());
    const replacedBy = (prev && prev[0] === "insert") || (next && next[0] === "insert");
    return replacedBy ? null : h("span", { class: "sftlab-del-mark", title: `${against} had here: ${text.trim()}` }, "⌫");
  });
  const added = pieces.filter(([op]) => op === "insert").reduce((n, [, t]) => n + t.trim().split(/\s+/).filter(Boolean).length, 0);
  const lost = dropped.join(" ").split(/\s+/).filter(Boolean).length;
  const note = lost || added ? h("details", { class: "sftlab-diff-note" },
    h("summary", {}, `${added} word${added === 1 ? "" : "s"} added, ${lost} dropped from ${against}`),
    lost ? h("div", { class: "sftlab-dropped" }, "Dropped: ", ...dropped.flatMap((t, i) => [i ? " … " : "", h("del", { class: "sftlab-del" }, t)])) : null) : null;
  return [h("div", { class: "sftlab-reply" }, body), note];
}

function drawFigures(host, model, figures) {
  // charts (widgets/chart.py) held in traits, each drawn into its node once visible through
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
