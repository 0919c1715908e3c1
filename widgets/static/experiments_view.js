// ExperimentsView front end: the variant form, the queue's buttons and the settings it trains
// with, the status table, the loss overlay and size ladder (charts drawn through
// anywidget's host), the held-out NLL tables and two runs side by side with a word diff.
// State lives in the traits of widgets/experiments_view.py; buttons increment *_clicks traits.
// Tables are built from rows of data; every text goes in as text (h() appends text nodes).

function num(x, digits = 3) {
  return typeof x === "number" && isFinite(x) ? (Number.isInteger(x) ? String(x) : x.toFixed(digits)) : "—";
}

function oneLine(text) {
  return String(text ?? "").split(/\s+/).filter(Boolean).join(" ");
}

function clip(text, n) {
  const line = oneLine(text);
  return line.length <= n ? line : `${line.slice(0, n - 1)}…`;
}

function expandable(text, n) {
  // a reply cut short in its cell, the whole of it on hover and one click away
  if (!text) return h("span", { class: "sftlab-pending" }, "(empty)");
  const short = clip(text, n);
  if (short === oneLine(text)) return h("div", { class: "sftlab-reply" }, text);
  return h("details", { class: "sftlab-reply", title: text }, h("summary", {}, short), text);
}

function table(cls, widths, heads, rows) {
  // a .sftlab-table (fixed layout, the panel's width) with column widths and header titles
  return h("table", { class: `sftlab-table sftlab-exp-table ${cls}` },
    h("colgroup", {}, widths.map((w) => h("col", { style: w ? `width: ${w}` : null }))),
    h("thead", {}, h("tr", {}, heads.map(([text, title]) => h("th", { title }, text)))),
    h("tbody", {}, rows));
}

function fill(node, ...children) {
  // replaceChildren, leaving out the null of a part not shown (replaceChildren would write "null")
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

function statusCell(status) {
  return h("td", { class: `sftlab-status sftlab-status-${status}` }, status);
}

function render({ model, el, host }) {
  const set = (name, value) => { model.set(name, value); model.save_changes(); };
  const click = (trait) => set(trait, model.get(trait) + 1);
  const labelled = (cls, text, input, title) => h("label", { class: `sftlab-exp-field ${cls}`, title }, text, input);

  // -- the form --------------------------------------------------------------------------------
  const kind = h("select", { onchange: () => set("kind", kind.value) });
  const params = h("input", { type: "text", onchange: () => set("params", params.value) });
  const experiment = h("input", { type: "text", placeholder: "name (default: the kind)",
    onchange: () => set("experiment", experiment.value) });
  const seeds = h("input", { type: "number", min: "1", max: "10", step: "1",
    onchange: () => { const n = parseInt(seeds.value, 10); if (Number.isFinite(n)) set("seeds", n); } });
  const add = h("button", { class: "sftlab-button sftlab-exp-add", title: "Queue one run per value (times the seeds)",
    onclick: () => {
      // what is typed counts even if the box still has the focus
      model.set("params", params.value);
      model.set("experiment", experiment.value);
      const n = parseInt(seeds.value, 10);
      if (Number.isFinite(n)) model.set("seeds", n);
      click("add_clicks");
    } }, "Add to queue");
  const hint = h("div", { class: "sftlab-exp-hint sftlab-meta" });

  // -- the queue ---------------------------------------------------------------------------------
  const run = h("button", { class: "sftlab-button sftlab-primary sftlab-exp-run", onclick: () => click("run_clicks"),
    title: "Train the queued runs one after another (the session's other jobs wait)" }, "Run queue");
  const stop = h("button", { class: "sftlab-button sftlab-exp-stop", onclick: () => click("stop_clicks"),
    title: "End the current run after its step (its model is kept) and cancel the queued ones" }, "Stop");
  const reportButton = h("button", { class: "sftlab-button sftlab-exp-report", onclick: () => click("report_clicks"),
    title: "One HTML file about the experiment shown (all experiments: the runs folder)" }, "Report");
  const stateText = h("span", { class: "sftlab-state" });
  const settings = h("div", { class: "sftlab-estimate sftlab-exp-settings",
    title: "Set these in the Train tab; the queue reads them when it starts" });
  const busy = h("div", { class: "sftlab-busy sftlab-exp-busy", role: "status" });
  const error = h("div", { class: "sftlab-error sftlab-exp-error", role: "alert" });
  const message = h("div", { class: "sftlab-message sftlab-exp-message" });

  // -- what the runs did -------------------------------------------------------------------------
  const show = h("select", { onchange: () => set("show", show.value) });
  const status = h("div", { class: "sftlab-exp-status" });
  const overlay = h("div", { class: "sftlab-chart sftlab-exp-overlay" });
  const ladder = h("div", { class: "sftlab-chart sftlab-exp-ladder" });
  const variants = h("div", { class: "sftlab-exp-variants" });
  const probe = h("select", { class: "sftlab-exp-probe", onchange: () => { chosenProbe = probe.value; drawNll(); } });
  let chosenProbe = null;
  const nll = h("div", { class: "sftlab-exp-nll" });

  // -- two runs side by side ---------------------------------------------------------------------
  const runA = h("select", { onchange: () => set("run_a", runA.value) });
  const runB = h("select", { onchange: () => set("run_b", runB.value) });
  const compare = h("button", { class: "sftlab-button sftlab-exp-compare", onclick: () => {
    model.set("run_a", runA.value);
    model.set("run_b", runB.value);
    click("compare_clicks");
  } }, "Compare runs");
  const compared = h("div", { class: "sftlab-exp-compare-view" });

  el.classList.add("sftlab", "sftlab-experiments");
  keepKeys(el);
  el.append(
    h("div", { class: "sftlab-exp-head" }, h("b", {}, "What-if experiments"),
      h("span", { class: "sftlab-muted" }, " each run trains a fresh copy of the base model on a variant of the data")),
    h("div", { class: "sftlab-toolbar sftlab-exp-form" },
      labelled("sftlab-exp-kind", "Variant ", kind),
      labelled("sftlab-exp-params", "Values ", params),
      labelled("sftlab-exp-name", "Experiment ", experiment),
      labelled("sftlab-exp-seeds", "Seeds ", seeds, "Runs per variant, each with another seed: is a difference real or noise?"),
      add),
    hint,
    h("div", { class: "sftlab-toolbar" }, run, stop, reportButton, stateText),
    settings, busy, error, message,
    h("div", { class: "sftlab-toolbar" }, labelled("sftlab-exp-show", "Show ", show)),
    status,
    overlay, ladder,  // one under the other: the ladder has two panels of its own
    variants, nll,
    h("div", { class: "sftlab-exp-section" }, "Two runs side by side"),
    h("div", { class: "sftlab-toolbar" }, labelled("sftlab-exp-run-a", "Run A ", runA),
      labelled("sftlab-exp-run-b", "Run B ", runB), compare),
    compared);

  const kindOf = () => model.get("kinds").find((k) => k.key === model.get("kind")) || {};
  const working = () => ["running", "stopping", "comparing"].includes(model.get("state"));

  function options(select, values, chosen, empty, pick) {
    // the choices; when none is chosen, a first line that says what to do
    const none = !values.includes(chosen);
    fill(select, !values.length ? h("option", { value: "" }, empty)
      : none && pick ? h("option", { value: "", disabled: "" }, pick) : null,
    values.map((v) => h("option", { value: v, title: v }, v)));
    select.value = none ? "" : chosen;
  }
  function drawForm() {
    const kinds = model.get("kinds");
    if (kind.options.length !== kinds.length) {
      fill(kind, kinds.map((k) => h("option", { value: k.key, title: k.hint }, k.label)));
    }
    kind.value = model.get("kind");
    const k = kindOf();
    if (document.activeElement !== params) params.value = model.get("params");
    params.placeholder = k.hint || "";
    params.disabled = k.values === false;
    params.title = k.hint || "";
    if (document.activeElement !== experiment) experiment.value = model.get("experiment");
    if (document.activeElement !== seeds) seeds.value = model.get("seeds");
    hint.textContent = model.get("hint");
  }
  function drawState() {
    const s = model.get("state");
    const other = model.get("busy");
    const queueOn = s === "running" || s === "stopping";
    run.disabled = working() || !!other;
    stop.disabled = !queueOn;
    const two = model.get("run_options").length >= 2;
    compare.disabled = working() || !!other || !two;
    compare.title = two ? "Load the two runs' saved models and let both answer the probes (one model in memory at a time)"
      : "Two finished runs with saved models are needed";
    stateText.textContent = { running: "training the queue…", stopping: "stopping…", comparing: "comparing…",
      idle: "", done: "", error: "failed" }[s] ?? s;
    el.dataset.state = s;
    busy.textContent = other;
    busy.hidden = !other;
    error.textContent = model.get("error");
    error.hidden = !model.get("error");
    message.textContent = model.get("message");
    settings.textContent = model.get("train_settings");
    settings.hidden = !model.get("train_settings");
  }
  function drawStatus() {
    const rows = model.get("status_rows");
    if (!rows.length) {
      fill(status, h("p", { class: "sftlab-muted" }, 'No runs yet: define a variant and press "Add to queue".'));
      return;
    }
    fill(status, table("sftlab-exp-status-table", ["26%", "10%", "24%", null],
      [["run"], ["status"], ["progress"], ["note"]],
      rows.map((r) => h("tr", { "data-run": r.run },
        h("td", { class: "sftlab-exp-run" }, r.run), statusCell(r.status),
        h("td", {}, r.total ? [h("progress", { value: r.step, max: r.total }), ` ${r.step}/${r.total}`] : null),
        h("td", { class: r.status === "failed" ? "sftlab-exp-failed" : null, title: r.detail || null }, r.note)))));
  }
  function drawChoices() {
    options(show, model.get("show_options"), model.get("show"), "all experiments");
    const runs = model.get("run_options");
    options(runA, runs, model.get("run_a"), "no finished runs yet", "pick a run");
    options(runB, runs, model.get("run_b"), "no finished runs yet", "pick a run");
    runA.disabled = runB.disabled = !runs.length;
    ladder.hidden = !model.get("show_ladder");
    drawState();
  }
  function drawVariants() {
    const rows = model.get("variant_rows");
    if (!rows.length) { fill(variants); return; }
    fill(variants,
      h("div", { class: "sftlab-exp-section" }, "Variants over their seeds"),
      table("sftlab-exp-group-table", ["24%", "7%", "9%", "12%", "8%", "13%", "12%", null],
        [["variant"], ["runs"], ["examples"], ["held-out NLL", "mean over the seeds (lower is better)"], ["sd"],
          ["min-max"], ["probe similarity", "words the probe replies share with the references"], ["verdict"]],
        rows.map((r) => {
          const n = r.eval_nll;
          const verdict = r.best ? "lowest mean" : r.overlaps_best ? "overlaps the best: may be noise" : n ? "clearly worse" : "—";
          return h("tr", { "data-variant": r.variant },
            h("td", { class: "sftlab-exp-run" }, r.variant), h("td", { class: "sftlab-num" }, num(r.runs)),
            h("td", { class: "sftlab-num" }, num(r.examples)),
            h("td", { class: "sftlab-num" }, n ? num(n.mean) : "—"), h("td", { class: "sftlab-num" }, n ? num(n.sd) : "—"),
            h("td", { class: "sftlab-num" }, n ? `${num(n.min)}-${num(n.max)}` : "—"),
            h("td", { class: "sftlab-num" }, r.probe_similarity ? num(r.probe_similarity.mean) : "—"),
            h("td", { class: r.best ? "sftlab-best" : r.overlaps_best ? "sftlab-muted" : null }, verdict));
        })),
      h("p", { class: "sftlab-meta" }, "A variant whose min-max range overlaps the best one's is not shown to be "
        + "worse: one seed could rank them the other way round."));
  }
  function drawNll() {
    const rows = model.get("nll_rows");
    if (!rows.length) {
      fill(nll, h("p", { class: "sftlab-muted" }, "Finished runs will be listed here."));
      return;
    }
    const prompts = [];
    for (const r of rows) for (const p of r.probes) if (!prompts.includes(p.prompt)) prompts.push(p.prompt);
    if (!prompts.includes(chosenProbe)) chosenProbe = prompts[0] ?? null;
    fill(probe, prompts.map((p, i) => h("option", { value: p, title: p }, `${i + 1}. ${clip(p, 70)}`)));
    if (chosenProbe !== null) probe.value = chosenProbe;
    const width = model.get("reply_chars");
    const head = [["run"], ["status"], ["examples"], ["steps"], ["final train loss", "mean loss of the last steps"],
      ["held-out NLL", "mean NLL per response token of the held-out set (lower is better)"]];
    if (prompts.length) head.push([`reply to probe ${prompts.indexOf(chosenProbe) + 1}`, chosenProbe]);
    const widths = ["20%", "9%", "9%", "7%", "10%", "10%"];
    if (prompts.length) widths.push(null);
    fill(nll,
      h("div", { class: "sftlab-toolbar" }, h("span", { class: "sftlab-exp-section" }, "Held-out NLL and probe replies"),
        prompts.length > 0 ? h("label", { title: "The probe whose replies the last column shows" }, "Probe ", probe) : null),
      table("sftlab-exp-nll-table", widths, head, rows.map((r) => {
        const reply = (r.probes.find((p) => p.prompt === chosenProbe) || {}).reply;
        return h("tr", { "data-run": r.run },
          h("td", { class: "sftlab-exp-run" }, r.run), statusCell(r.status),
          h("td", { class: "sftlab-num" }, num(r.examples)), h("td", { class: "sftlab-num" }, num(r.steps)),
          h("td", { class: "sftlab-num" }, num(r.final_loss) + (r.full_sequence_loss ? " *" : "")),
          h("td", { class: `sftlab-num${r.best ? " sftlab-best" : ""}` }, num(r.eval_nll)),
          prompts.length ? h("td", { class: "sftlab-probe" }, reply === undefined
            ? h("span", { class: "sftlab-muted" }, "—") : expandable(reply, width)) : null);
      })),
      rows.some((r) => r.full_sequence_loss) ? h("p", { class: "sftlab-meta" }, "* loss on every token (prompt too), "
        + "not only the response: not on the same scale as the others. The held-out NLL is always on responses only.") : null,
      rows.some((r) => typeof r.eval_nll === "number") ? null : h("p", { class: "sftlab-meta" },
        "No held-out NLL: give the view eval_data (examples the runs never train on)."));
  }
  function drawComparison() {
    const rows = model.get("comparison_rows");
    if (!rows.length) { fill(compared); return; }
    const names = rows[0].columns.map((c) => c.name);
    const info = model.get("comparison_info");
    fill(compared,
      table("sftlab-exp-compare-table", ["24%", null, null],
        [["prompt"], ...names.map((n) => [[n, info[n] ? h("div", { class: "sftlab-meta" }, info[n]) : null]])],
        rows.map((r) => h("tr", { class: "sftlab-row" }, h("td", { class: "sftlab-prompt-cell" }, r.prompt),
          r.columns.map((c) => h("td", { class: "sftlab-cell", "data-column": c.name },
            c.diff && c.reply ? diffView(c.diff, `${names[0]}'s reply`)
              : h("div", { class: "sftlab-reply" }, c.reply || h("span", { class: "sftlab-pending" }, "(empty reply)"))))))),
      h("p", { class: "sftlab-meta" }, `${names[1]}'s reply: words it adds over ${names[0]}'s marked `,
        h("ins", { class: "sftlab-ins" }, "green"), " (hover one: the words it replaced); where it only drops words, a red mark ",
        h("span", { class: "sftlab-del-mark" }, "⌫"), "."));
  }

  for (const name of ["kinds", "kind", "params", "hint", "experiment", "seeds"]) model.on(`change:${name}`, drawForm);
  for (const name of ["state", "busy", "error", "message", "train_settings"]) model.on(`change:${name}`, drawState);
  model.on("change:status_rows", drawStatus);
  for (const name of ["show", "show_options", "run_options", "run_a", "run_b", "show_ladder"]) model.on(`change:${name}`, drawChoices);
  model.on("change:variant_rows", drawVariants);
  model.on("change:nll_rows", drawNll);
  model.on("change:reply_chars", drawNll);
  model.on("change:comparison_rows", drawComparison);
  model.on("change:comparison_info", drawComparison);
  drawForm();
  drawStatus();
  drawChoices();
  drawVariants();
  drawNll();
  drawComparison();
  return drawFigures(host, model, [["figure", overlay, "loss chart"], ["ladder", ladder, "size chart"]]);
}

export default { render };
