// TrainPanel front end: model box, hyperparameters, estimate, Start/Stop/Reset, progress,
// live loss chart (a Chart, widgets/chart.py, drawn through anywidget's host) and sample replies.
// State lives in the traits of widgets/train_panel.py; buttons increment *_clicks traits.

function clock(seconds) {
  if (seconds == null || !isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
    : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// The settings' boxes come from the `setting_spec` trait (each setting's declaration in
// lab/config.py, plus the panel's own): [trait, label, input type, step, min, title],
// number boxes first, then the checkboxes.
function settingsOf(model) {
  const spec = model.get("setting_spec");
  const row = (s) => [s.name, s.label, s.type === "bool" ? "checkbox" : "number", s.step == null ? "any" : String(s.step),
    s.low, s.help.charAt(0).toUpperCase() + s.help.slice(1)];
  return [...spec.filter((s) => s.type !== "bool"), ...spec.filter((s) => s.type === "bool")].map(row);
}

function render({ model, el, host }) {
  const SETTINGS = settingsOf(model);
  const click = (trait) => { model.set(trait, model.get(trait) + 1); model.save_changes(); };
  const button = (cls, text, trait, title) => h("button", { class: `sftlab-button ${cls}`, title, onclick: () => click(trait) }, text);

  const modelBox = h("input", {
    type: "text", class: "sftlab-model", list: "sftlab-models", placeholder: "default, tiny-random, a hub id or a folder",
    onchange: () => { model.set("model_name", modelBox.value.trim()); model.save_changes(); },
  });
  const inputs = {};
  const grid = h("div", { class: "sftlab-grid" }, SETTINGS.map(([name, label, type, step, min, title]) => {
    const input = h("input", {
      type, step, min: type === "number" ? min : null, class: `sftlab-${name.replace(/_/g, "-")}`, title,
      onchange: () => {
        const value = type === "checkbox" ? input.checked : Number(input.value);
        if (type === "checkbox" || Number.isFinite(value)) model.set(name, value);
        model.save_changes();
      },
    });
    inputs[name] = input;
    return h("label", { title }, label, input);
  }));
  const info = h("span", { class: "sftlab-model-info" });
  const estimate = h("div", { class: "sftlab-estimate" });
  const start = button("sftlab-start sftlab-primary", "Start", "start_clicks", "Train the model on the examples");
  const busy = h("div", { class: "sftlab-busy", role: "status" });
  const confirm = h("div", { class: "sftlab-confirm", role: "alert" });
  const runSelect = h("select", {
    class: "sftlab-run-select", title: "Runs stored in the runs folder, newest first",
    onchange: () => { model.set("run_choice", runSelect.value); model.save_changes(); },
  });
  const loadRun = h("button", { class: "sftlab-button sftlab-load-run", onclick: () => {
    model.set("run_choice", runSelect.value);
    click("load_run_clicks");
  }, title: "Make this run's saved model the tuned model (to compare it, or to train it further)" }, "Load as tuned");
  const reportButton = h("button", { class: "sftlab-button sftlab-report", onclick: () => {
    model.set("run_choice", runSelect.value);
    click("report_clicks");
  }, title: "Write this run's report: one HTML file with its data, settings, curves, timeline and replies" }, "Report");
  const tuned = h("span", { class: "sftlab-tuned-run" });
  const stop = button("sftlab-stop", "Stop", "stop_clicks", "End the run after the current step; the model keeps what it learned");
  const reset = button("sftlab-reset", "Reset to base", "reset_clicks", "Forget all training: the tuned model becomes the base model again");
  const load = button("sftlab-load-model", "Load model", "load_clicks", "Load the model named in the box");
  const bar = h("progress", { class: "sftlab-progress", max: 1, value: 0 });
  const barText = h("span", { class: "sftlab-progress-text" });
  const state = h("span", { class: "sftlab-state" });
  const startsFrom = h("span", { class: "sftlab-starts-from sftlab-muted" });
  const message = h("div", { class: "sftlab-message" });
  const error = h("div", { class: "sftlab-error", role: "alert" });
  const chart = h("div", { class: "sftlab-chart sftlab-loss-chart" });
  const timelineChart = h("div", { class: "sftlab-chart sftlab-timeline-chart" });
  const forgetting = h("details", { class: "sftlab-forgetting" });
  const samples = h("div", { class: "sftlab-samples" });

  el.classList.add("sftlab", "sftlab-train");
  el.append(
    h("div", { class: "sftlab-toolbar" }, h("label", {}, "Model ", modelBox), load, info,
      h("datalist", { id: "sftlab-models" }, h("option", { value: "default" }), h("option", { value: "tiny-random" }),
        h("option", { value: "HuggingFaceTB/SmolLM2-135M" }))),
    grid, estimate,
    h("div", { class: "sftlab-toolbar" }, start, stop, reset, state, startsFrom),
    busy, confirm,
    h("div", { class: "sftlab-progress-row" }, bar, barText),
    error, message, h("div", { class: "sftlab-charts" }, chart, timelineChart), forgetting, samples,
    h("div", { class: "sftlab-toolbar sftlab-runs" }, h("label", {}, "Stored runs ", runSelect), loadRun, reportButton, tuned));
  keepKeys(el);

  function drawSettings() {
    modelBox.value = model.get("model_name");
    for (const [name, , type] of SETTINGS) {
      if (document.activeElement === inputs[name]) continue; // don't fight the user's typing
      if (type === "checkbox") inputs[name].checked = model.get(name);
      else inputs[name].value = model.get(name);
    }
    const loaded = model.get("loaded_model");
    info.textContent = loaded ? `loaded: ${loaded} (${model.get("model_info")})` : "no model loaded yet";
  }
  function drawEstimate() {
    const est = model.get("estimate");
    estimate.textContent = `Estimate for ${model.get("n_examples")} examples: ${est.text || "–"}`;
    estimate.title = "6 FLOPs per parameter per token at half of this machine's measured fp32 matmul rate; "
      + "memory: weights, gradients, Adam moments, the base copy and activations";
  }
  function drawState() {
    const s = model.get("state");
    const other = model.get("busy");
    const working = s === "loading" || s === "training" || s === "stopping";
    start.disabled = working || !!other;
    start.textContent = model.get("confirm") ? "Start anyway" : "Start";
    load.disabled = working || !!other;
    reset.disabled = working || !!other;
    loadRun.disabled = working || !!other || !runSelect.value;
    reportButton.disabled = !runSelect.value;
    stop.disabled = s !== "training";
    busy.textContent = other;
    busy.hidden = !other;
    confirm.textContent = model.get("confirm");
    confirm.hidden = !model.get("confirm");
    state.textContent = { loading: "loading model…", training: "training…", stopping: "stopping…",
      done: "done", stopped: "stopped", error: "failed", idle: "" }[s] ?? s;
    el.dataset.state = s;
    startsFrom.textContent = working ? "" : model.get("starts_from");
  }
  function drawProgress() {
    const p = model.get("progress");
    const total = p.total || 0;
    bar.max = Math.max(1, total);
    bar.value = p.step || 0;
    if (!total) { barText.textContent = ""; return; }
    const parts = [`step ${p.step}/${total}`];
    if (p.loss != null) parts.push(`loss of this step ${p.loss.toFixed(3)}`);
    if (p.tokens_per_second != null) parts.push(`${Math.round(p.tokens_per_second)} tokens/s`);
    if (p.elapsed != null) parts.push(`elapsed ${clock(p.elapsed)}`);
    const running = ["training", "stopping"].includes(model.get("state"));
    if (running && p.eta != null && p.step < total) parts.push(`ETA ${clock(p.eta)}`);
    barText.textContent = parts.join(" · ");
  }
  function drawStatus() {
    message.textContent = model.get("message");
    error.textContent = model.get("error");
    error.hidden = !model.get("error");
  }
  function drawRuns() {
    const stored = model.get("stored");
    runSelect.replaceChildren(...(stored.length ? stored.map((r) => h("option", {
      value: r.path, disabled: r.loadable ? null : "", title: r.loadable ? r.line : `${r.line} (no saved model of this base model)`,
    }, r.line)) : [h("option", { value: "" }, "no runs yet")]));
    runSelect.value = model.get("run_choice");
    const name = model.get("tuned_run");
    tuned.textContent = name ? `tuned model: the weights of ${name}` : "tuned model: the base model";
    drawState();
  }
  function drawForgetting() {
    const f = model.get("forgetting");
    forgetting.hidden = !f.questions;
    if (!f.questions) { forgetting.replaceChildren(); return; }
    const right = (a) => Math.round(a * f.questions);
    const table = (title, rows) => rows.length ? [h("div", { class: "sftlab-learned-title" }, `${title} (${rows.length})`),
      h("table", {}, h("tr", {}, h("th", {}, "question"), h("th", {}, "answer"), h("th", {}, "base model said"), h("th", {}, "tuned model said")),
        rows.map((r) => h("tr", {}, h("td", {}, r.question), h("td", {}, r.answer), h("td", {}, r.base), h("td", {}, r.tuned))))] : [];
    forgetting.replaceChildren(
      h("summary", {}, `Forgetting meter: ${right(f.base_accuracy)} of ${f.questions} general questions answered right by the base model, `
        + `${right(f.tuned_accuracy)} by the tuned one; ${f.right_to_wrong.length} right → wrong, ${f.wrong_to_right.length} wrong → right`),
      h("div", { class: "sftlab-muted" }, "A flip or two is noise; a rising retention NLL with the same answers right means a new style, not lost knowledge."),
      ...table("Right → wrong", f.right_to_wrong), ...table("Wrong → right", f.wrong_to_right));
  }
  function drawSamples() {
    const list = model.get("samples");
    const recent = list.slice(-6).reverse(); // the last few evals, newest first
    samples.replaceChildren(...(list.length ? [h("div", { class: "sftlab-sample-head" }, "Sample replies during training (greedy, newest first):")] : []),
      ...recent.map((s) => h("div", { class: "sftlab-sample" },
        h("div", { class: "sftlab-sample-head" }, `step ${s.step} · ${s.prompt}`), s.reply || "(empty reply)")));
  }

  for (const name of ["model_name", "loaded_model", "model_info", ...SETTINGS.map((s) => s[0])]) {
    model.on(`change:${name}`, drawSettings);
  }
  model.on("change:estimate", drawEstimate);
  model.on("change:n_examples", drawEstimate);
  for (const name of ["state", "busy", "confirm", "starts_from"]) model.on(`change:${name}`, drawState);
  for (const name of ["stored", "run_choice", "tuned_run"]) model.on(`change:${name}`, drawRuns);
  model.on("change:state", drawProgress);
  model.on("change:progress", drawProgress);
  model.on("change:message", drawStatus);
  model.on("change:error", drawStatus);
  model.on("change:samples", drawSamples);
  model.on("change:forgetting", drawForgetting);
  drawSettings();
  drawEstimate();
  drawRuns();
  drawProgress();
  drawStatus();
  drawSamples();
  drawForgetting();
  return drawFigures(host, model, [["chart", chart, "loss chart"], ["timeline_chart", timelineChart, "timeline chart"]]);
}

export default { render };
