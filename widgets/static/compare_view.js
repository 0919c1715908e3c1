// CompareView front end: prompts, decoding settings, and the side-by-side table with word
// diffs, reference NLL and per-token probability heat maps. State lives in the traits of
// widgets/compare_view.py; buttons increment *_clicks traits.

const LABELS = { base: "Base model", tuned: "Tuned model" };

function short(text, n = 40) {
  return text.length > n ? `${text.slice(0, n)}…` : text;
}

function heat(p) {
  // probability 0 -> red, 1 -> green, translucent so text stays readable in both themes
  const hue = Math.round(120 * Math.max(0, Math.min(1, p)));
  return `hsla(${hue}, 75%, 50%, 0.35)`;
}

function tokenTitle(p, base) {
  // a token's probability, and for the tuned model how it changed from the base model
  if (base == null) return `p = ${p.toFixed(3)}`;
  const change = Math.log(Math.max(p, 1e-12)) - Math.log(Math.max(base, 1e-12));
  return `p = ${p.toFixed(3)} (base model ${base.toFixed(3)}): log-probability ${change >= 0 ? "+" : ""}${change.toFixed(2)} `
    + `(nats: +0.69 doubles the probability), ${change >= 0 ? "promoted" : "suppressed"} by the tuning`;
}

function changeList(title, items) {
  return h("div", { class: "sftlab-learned-list" }, h("div", { class: "sftlab-learned-title" }, title),
    items.length ? h("ol", {}, items.map((t) => h("li", { title: `seen ${t.count} time${t.count === 1 ? "" : "s"}, mean change ${t.mean_change.toFixed(2)} nats (log-probability, tuned minus base)` },
      h("code", {}, t.text), ` ×${t.count} `, h("span", { class: t.mean_change > 0 ? "sftlab-up" : "sftlab-down" },
        `${t.mean_change > 0 ? "+" : ""}${t.mean_change.toFixed(2)}`)))) : h("div", { class: "sftlab-muted" }, "none"));
}

function influenceList(title, entries, cls) {
  // one side of "Which examples?": score, instruction and response, long texts cut (all on hover)
  return h("div", { class: "sftlab-learned-list" }, h("div", { class: "sftlab-learned-title" }, title),
    entries.length ? h("ol", {}, entries.map((e) => h("li", { class: "sftlab-influence-entry",
      title: (e.number != null ? `Example #${e.number} of the Dataset tab` : `Training example ${e.index + 1} of the run's dataset.jsonl`)
        + `, cosine ${e.score}\nInstruction: ${e.prompt}\nResponse: ${e.response}` },
      h("span", { class: cls }, `${e.score > 0 ? "+" : ""}${e.score.toFixed(2)}`), e.number != null ? ` #${e.number} ` : ` (run's #${e.index + 1}) `,
      h("span", { class: "sftlab-influence-prompt" }, short(e.prompt, 80)), " → ",
      h("span", { class: "sftlab-influence-response" }, short(e.response, 140))))) : h("div", { class: "sftlab-muted" }, "none"));
}

function influencePanel(inf) {
  return h("div", { class: "sftlab-learned sftlab-influence" },
    h("div", { class: "sftlab-learned-head" }, `Which of the run's ${inf.examples} training examples pushed this reply up or down `
      + "(cosine of their gradients, -1 to 1; # is the example's number in the Dataset tab):"),
    h("div", { class: "sftlab-learned-grid" },
      influenceList("Supporting: training on it makes the reply more likely", inf.supporting, "sftlab-up"),
      influenceList("Opposing: training on it makes the reply less likely", inf.opposing, "sftlab-down")),
    h("div", { class: "sftlab-meta sftlab-influence-note" }, inf.note));
}

function render({ model, el }) {
  const set = (name, value) => { model.set(name, value); model.save_changes(); };
  const click = (trait) => set(trait, model.get(trait) + 1);
  const field = (name, attrs, parse = (v) => v) => {
    const input = h("input", { ...attrs, class: `sftlab-${name.replace(/_/g, "-")}` });
    input.addEventListener("change", () => {
      const value = attrs.type === "checkbox" ? input.checked : parse(input.value);
      if (attrs.type === "checkbox" || attrs.type !== "number" || Number.isFinite(value)) set(name, value);
    });
    return input;
  };

  const source = h("select", { class: "sftlab-source", onchange: () => set("source", source.value) });
  const prompts = h("textarea", {
    class: "sftlab-prompts", placeholder: "One prompt per line (write \\n for a line break inside a prompt)",
    onchange: () => set("prompts", prompts.value),
  });
  const references = h("textarea", {
    class: "sftlab-references", placeholder: "Reference answers for reference mode (optional), one per line, in the prompts' order",
    onchange: () => set("references", references.value),
  });
  const probeList = h("ol", { class: "sftlab-probe-list" });
  const typed = h("div", { class: "sftlab-inputs" }, prompts, references);
  const decoding = h("select", { class: "sftlab-decoding", onchange: () => set("decoding", decoding.value) },
    h("option", { value: "greedy" }, "Greedy (deterministic)"), h("option", { value: "sampled" }, "Sampled"));
  const temperature = field("temperature", { type: "number", step: "0.1", min: "0" }, Number);
  const maxNew = field("max_new_tokens", { type: "number", step: "16", min: "1" }, Number);
  const seed = field("seed", { type: "number", step: "1" }, Number);
  const referenceMode = field("reference_mode", { type: "checkbox" });
  const showDiff = field("show_diff", { type: "checkbox" });
  const exportPath = field("export_path", { type: "text" });
  const compare = h("button", { class: "sftlab-button sftlab-primary sftlab-compare-button", onclick: () => click("compare_clicks"),
    title: "Generate base and tuned replies to every prompt, with the same settings and seed" }, "Compare");
  const exportButton = h("button", { class: "sftlab-button sftlab-export", onclick: () => {
    set("export_path", exportPath.value);
    click("export_clicks");
  }, title: "Write the table as CSV or JSONL (by the file name)" }, "Export table");
  const bar = h("progress", { class: "sftlab-progress", max: 1, value: 0 });
  const barText = h("span", { class: "sftlab-progress-text" });
  const message = h("div", { class: "sftlab-message" });
  const error = h("div", { class: "sftlab-error", role: "alert" });
  const table = h("table", { class: "sftlab-table sftlab-replies-table" });
  const learnedButton = h("button", { class: "sftlab-button sftlab-learned-button", onclick: () => click("learned_clicks"),
    title: "Score every token of the reference answers (or of the tuned replies) under both models: which tokens and phrases did the tuning make more, and less, likely?" }, "What changed?");
  const learnedBox = h("div", { class: "sftlab-learned" });
  const slider = h("input", { type: "range", class: "sftlab-timeline-slider", min: "0", max: "0", step: "1", value: "0",
    oninput: () => drawTimeline() });
  const timelineHead = h("div", { class: "sftlab-timeline-head" });
  const timelineTable = h("table", { class: "sftlab-table sftlab-timeline-table" });
  const timelineBox = h("details", { class: "sftlab-timeline", open: "" },
    h("summary", {}, "How the replies changed during the run"),
    h("div", { class: "sftlab-toolbar" }, h("label", {}, "Step ", slider), timelineHead), timelineTable);

  const busy = h("div", { class: "sftlab-busy", role: "status" });
  el.classList.add("sftlab", "sftlab-compare");
  keepKeys(el);
  el.append(
    h("div", { class: "sftlab-toolbar" }, h("label", {}, "Prompts ", source)),
    typed, probeList,
    h("div", { class: "sftlab-toolbar" },
      h("label", {}, "Decoding ", decoding), h("label", {}, "Temperature ", temperature),
      h("label", {}, "Max new tokens ", maxNew), h("label", {}, "Seed ", seed),
      h("label", { class: "sftlab-check", title: "Score the reference answers: NLL and per-token probabilities under each model" },
        referenceMode, " Reference mode"),
      h("label", { class: "sftlab-check", title: "Mark the words each reply adds to the base reply; dropped words show on hover" }, showDiff, " Word diff")),
    h("div", { class: "sftlab-toolbar" }, compare, learnedButton, exportPath, exportButton),
    busy,
    h("div", { class: "sftlab-progress-row" }, bar, barText),
    error, message, table, learnedBox, timelineBox);

  function drawInputs() {
    const probes = model.get("probe_list");
    source.replaceChildren(h("option", { value: "typed" }, "typed below"),
      h("option", { value: "probes", disabled: probes.length ? null : "" }, `held-out probes (${probes.length})`));
    source.value = model.get("source");
    const useProbes = model.get("source") === "probes";
    typed.hidden = useProbes;
    probeList.hidden = !useProbes;
    probeList.replaceChildren(...probes.map((p) => h("li", {},
      p.system ? h("span", { class: "sftlab-badge", title: p.system }, `[system: ${short(p.system)}] `) : null, p.prompt)));
    if (document.activeElement !== prompts) prompts.value = model.get("prompts");
    if (document.activeElement !== references) references.value = model.get("references");
    decoding.value = model.get("decoding");
    temperature.value = model.get("temperature");
    temperature.disabled = model.get("decoding") !== "sampled";
    maxNew.value = model.get("max_new_tokens");
    seed.value = model.get("seed");
    referenceMode.checked = model.get("reference_mode");
    showDiff.checked = model.get("show_diff");
    exportPath.value = model.get("export_path");
  }
  function reply(col) {
    if (col.diff && col.reply && model.get("show_diff")) return diffView(col.diff);
    const running = model.get("state") === "running";
    const missing = col.reply === null ? "(not recorded for this run)" : running ? "…" : "(empty reply)";
    return h("div", { class: "sftlab-reply" }, col.reply || h("span", { class: "sftlab-pending" }, missing));
  }
  const blocked = () => model.get("state") === "running" || !!model.get("busy");
  function whichButton(row) {
    // "Which examples?" under a tuned reply, when the column shows a run
    return h("button", { class: "sftlab-button sftlab-influence-button", disabled: blocked() ? "" : null,
      title: "Rank the run's training examples by how much each pushed this reply up or down (gradient similarity at the final weights: an estimate)",
      onclick: () => { model.set("influence_row", row); click("influence_clicks"); } }, "Which examples?");
  }
  function cell(col, row) {
    const meta = [];
    if (col.nll != null) meta.push(`reference NLL ${col.nll.toFixed(3)} (perplexity ${Math.exp(col.nll).toFixed(1)})`);
    if (col.similarity != null && col.reply) meta.push(`${Math.round(100 * col.similarity)}% words shared with base`);
    return h("td", { class: "sftlab-cell", "data-column": col.name },
      reply(col),
      meta.length ? h("div", { class: "sftlab-meta" }, meta.join(" · ")) : null,
      col.probs ? h("div", { class: "sftlab-heat", title: "Reference answer, each token coloured by the probability this model gives it (red low, green high); hover a token for its change" },
        col.probs.map(([tok, p, base]) => h("span", { style: `background:${heat(p)}`, title: tokenTitle(p, base) }, tok))) : null,
      col.name === "tuned" && col.reply && model.get("tuned_run") ? whichButton(row) : null);
  }
  function drawTable() {
    const rows = model.get("rows");
    if (!rows.length) { table.replaceChildren(); return; }
    const names = rows[0].columns.map((c) => c.name);
    const inf = model.get("influence");
    table.replaceChildren(
      h("thead", {}, h("tr", {}, h("th", { style: "width: 22%" }, "Prompt"),
        names.map((n) => h("th", { "data-column": n }, n === "tuned" && model.get("tuned_run")
          ? `Tuned model: ${model.get("tuned_run")}` : LABELS[n] || `Earlier run: ${n}`)))),
      h("tbody", {}, rows.map((r, i) => [h("tr", { class: "sftlab-row" },
        h("td", { class: "sftlab-prompt-cell" },
          r.system ? h("div", { class: "sftlab-badge", title: r.system }, `system: ${short(r.system)}`) : null,
          r.prompt,
          r.reference != null ? h("div", { class: "sftlab-reference" }, `Reference: ${r.reference}`) : null),
        r.columns.map((c) => cell(c, i))),
        inf.row === i ? h("tr", { class: "sftlab-influence-row" }, h("td", { colspan: String(names.length + 1) }, influencePanel(inf))) : null])));
  }
  function drawLearned() {
    const s = model.get("learned");
    learnedBox.hidden = !s.tokens;
    if (!s.tokens) { learnedBox.replaceChildren(); return; }
    learnedBox.replaceChildren(
      h("div", { class: "sftlab-learned-head" }, `What changed, over ${s.tokens_scored} tokens of ${s.examples} ${s.source}: `
        + `mean change ${s.mean_change >= 0 ? "+" : ""}${s.mean_change.toFixed(2)} nats per token (log-probability, tuned minus base). `
        + "Items seen once are left out when others repeat."),
      h("div", { class: "sftlab-learned-grid" },
        changeList("Tokens made more likely", s.tokens.promoted), changeList("Tokens made less likely", s.tokens.suppressed),
        changeList("Phrases made more likely", s.phrases.promoted), changeList("Phrases made less likely", s.phrases.suppressed)));
  }
  function drawTimeline() {
    const points = model.get("timeline");
    timelineBox.hidden = !points.length;
    if (!points.length) { timelineTable.replaceChildren(); return; }
    slider.max = String(points.length - 1);
    const i = Math.min(Number(slider.value), points.length - 1);
    const p = points[i];
    const nll = (p.probe_nll || []).filter((v) => v != null);
    const parts = [`run ${model.get("timeline_run")}: point ${i + 1} of ${points.length}, step ${p.step}`
      + (p.before_step != null ? ` (words new since step ${p.before_step} in green)` : " (before training)")];
    if (nll.length) parts.push(`probe NLL ${(nll.reduce((a, b) => a + b, 0) / nll.length).toFixed(3)}`);
    if (p.retention) parts.push(`retention NLL: Q&A ${p.retention.qa.toFixed(3)}, text ${p.retention.text.toFixed(3)}`);
    timelineHead.textContent = parts.join(" · ");
    timelineTable.replaceChildren(h("thead", {}, h("tr", {}, h("th", { style: "width: 30%" }, "Probe"), h("th", {}, `Reply at step ${p.step}`))),
      h("tbody", {}, p.rows.map((r) => h("tr", { class: "sftlab-timeline-row" }, h("td", { class: "sftlab-prompt-cell" }, r.prompt),
        h("td", { class: "sftlab-cell" }, ...(r.diff && r.reply ? diffView(r.diff, `the reply at step ${p.before_step}`) : [h("div", { class: "sftlab-reply" }, r.reply || h("span", { class: "sftlab-pending" }, "(empty reply)"))]))))));
  }
  function drawState() {
    const p = model.get("progress");
    const running = model.get("state") === "running";
    compare.disabled = running || !!model.get("busy");
    learnedButton.disabled = running || !!model.get("busy") || !model.get("rows").length;
    for (const b of table.querySelectorAll(".sftlab-influence-button")) b.disabled = blocked();
    busy.textContent = model.get("busy");
    busy.hidden = !model.get("busy");
    el.dataset.state = model.get("state");
    bar.max = Math.max(1, p.total || 0);
    bar.value = p.done || 0;
    bar.hidden = !running;
    barText.textContent = running ? `${p.text || `generating: ${p.stage || ""}`}…` : "";
    message.textContent = model.get("message");
    error.textContent = model.get("error");
    error.hidden = !model.get("error");
  }

  for (const name of ["source", "probe_list", "prompts", "references", "decoding", "temperature",
    "max_new_tokens", "seed", "reference_mode", "show_diff", "export_path"]) model.on(`change:${name}`, drawInputs);
  model.on("change:show_diff", drawTable);
  model.on("change:rows", drawTable);
  model.on("change:rows", drawState);
  model.on("change:influence", drawTable);
  model.on("change:learned", drawLearned);
  model.on("change:timeline", () => { slider.value = String(Math.max(0, model.get("timeline").length - 1)); drawTimeline(); });
  for (const name of ["state", "progress", "message", "error", "busy"]) model.on(`change:${name}`, drawState);
  model.on("change:state", drawTable);
  drawInputs();
  drawTable();
  drawState();
  drawLearned();
  slider.value = String(Math.max(0, model.get("timeline").length - 1));
  drawTimeline();
}

export default { render };
