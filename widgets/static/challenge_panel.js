// ChallengePanel front end: the challenge's task and budget, the name (asked once), Submit,
// progress and the result. State lives in widgets/challenge_panel.py; text goes in as text.

function render({ model, el }) {
  const set = (name, value) => { model.set(name, value); model.save_changes(); };
  const title = h("b", { class: "sftlab-challenge-title" });
  const task = h("div", { class: "sftlab-challenge-task" });
  const rules = h("div", { class: "sftlab-meta sftlab-challenge-rules" });
  const budget = h("span", { class: "sftlab-challenge-budget" });
  const name = h("input", { type: "text", class: "sftlab-challenge-name", placeholder: "your name",
    onchange: () => set("name", name.value) });
  const submit = h("button", { class: "sftlab-button sftlab-primary sftlab-challenge-submit",
    title: "Train these examples with the challenge's settings, score them on its held-out set, file the result",
    onclick: () => { model.set("name", name.value); set("submit_clicks", model.get("submit_clicks") + 1); } }, "Submit");
  const progress = h("progress", { class: "sftlab-challenge-progress", max: "1", value: "0" });
  const message = h("div", { class: "sftlab-message sftlab-challenge-message", role: "status" });
  const error = h("div", { class: "sftlab-error sftlab-challenge-error", role: "alert" });
  const result = h("div", { class: "sftlab-challenge-result" });

  el.classList.add("sftlab", "sftlab-challenge");
  keepKeys(el);
  el.append(h("div", { class: "sftlab-challenge-box" },
    h("div", {}, "Class challenge: ", title), task, rules,
    h("div", { class: "sftlab-toolbar" }, budget, h("label", {}, "Name ", name), submit, progress),
    message, error, result));

  function draw() {
    const c = model.get("challenge") || {};
    const s = c.settings || {};
    title.textContent = c.title || "";
    task.textContent = c.task || "";
    rules.textContent = `Model ${c.model}; every submission trains the same way (${s.epochs} epochs, batch ${s.batch_size}, ` +
      `learning rate ${s.lr}, seed ${s.seed}); scored on ${c.held_out} held-out prompts you do not see` +
      (c.checks ? ` (${c.checks} checks)` : "") + `. The ${c.probes} public probes are in the Compare tab.`;
    const n = model.get("examples"), cap = c.budget;
    budget.textContent = `${n} of at most ${cap} examples`;
    budget.classList.toggle("sftlab-warning", n > cap);
    name.value = model.get("name");
    name.disabled = model.get("name_locked");
    name.title = model.get("name_locked") ? "Your submissions are filed under this name" : "Asked once: your submissions are filed under it";
    const state = model.get("state");
    el.dataset.state = state;
    submit.disabled = state === "running";
    const p = model.get("progress") || {};
    progress.hidden = state !== "running";
    progress.max = p.total || 1;
    progress.value = p.step || 0;
    message.textContent = model.get("message");
    error.textContent = model.get("error");
    error.hidden = !model.get("error");
    const r = model.get("result") || {};
    result.replaceChildren();
    if (r.rank) {
      const nll = typeof r.held_out_nll === "number" ? r.held_out_nll.toFixed(3) : "—";
      result.append(h("span", { class: "sftlab-challenge-rank" }, `Rank ${r.rank} of ${r.of}`),
        ` · held-out NLL ${nll} (lower is better) · checks passed ${r.checks_passed} of ${r.checks_total} · filed as ${r.folder}`);
    }
  }
  for (const name of ["challenge", "examples", "name", "name_locked", "state", "progress", "message", "error", "result"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
}

export default { render };
