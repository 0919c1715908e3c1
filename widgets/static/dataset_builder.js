// DatasetBuilder front end: the example list, search, starters, import/export, mask preview.
// State lives in the traits of widgets/dataset_builder.py; this module draws them and sends
// edits back with model.set + model.save_changes. Python validates, autosaves and computes
// token counts, warnings and the preview.

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

const EMPTY_EXAMPLE = { messages: [{ role: "user", content: "" }, { role: "assistant", content: "" }] };

function turnLabel(messages, j) {
  const turns = messages.filter((m) => m.role !== "system");
  const role = messages[j].role;
  if (turns.length <= 2) return role === "user" ? "Instruction" : "Response";
  const n = messages.slice(0, j + 1).filter((m) => m.role === role).length;
  return `${role === "user" ? "User" : "Assistant"} ${n}`;
}

function textRows(text) {
  // enough rows to show the text at about 70 characters a line, 2 to 10
  const lines = text.split("\n").reduce((n, line) => n + Math.max(1, Math.ceil(line.length / 70)), 0);
  return Math.min(10, Math.max(2, lines));
}

function markdown(text) {
  // the starter notes: headings, bullets, `code` and **bold** of plain Markdown, as text nodes
  const inline = (line) => line.split(/(`[^`]+`|\*\*[^*]+\*\*)/).filter(Boolean).map((part) =>
    part.startsWith("`") ? h("code", {}, part.slice(1, -1))
      : part.startsWith("**") ? h("b", {}, part.slice(2, -2)) : part);
  const out = h("div", { class: "sftlab-notes" });
  let list = null;
  for (const line of text.split("\n")) {
    const heading = line.match(/^#+\s+(.*)/);
    const bullet = line.match(/^\s*[-*]\s+(.*)/);
    if (bullet) {
      if (!list) out.append(list = h("ul", {}));
      list.append(h("li", {}, inline(bullet[1])));
      continue;
    }
    list = null;
    if (heading) out.append(h("div", { class: "sftlab-notes-heading" }, inline(heading[1])));
    else if (line.trim()) out.append(h("p", {}, inline(line)));
  }
  return out;
}

function exampleText(row) {
  const texts = row.messages ? row.messages.map((m) => m.content || "") : [row.text || ""];
  return [...texts, row.id || "", ...(row.tags || [])].join("\n").toLowerCase();
}

function render({ model, el, host }) {
  let rows = model.get("rows");
  let ownEdit = false;
  let timer = null;

  // ---- writing edits back ----------------------------------------------------------------
  function commit(rerender = false) {
    clearTimeout(timer);
    timer = null;
    ownEdit = true;
    model.set("rows", rows);
    model.save_changes();
    ownEdit = false;
    if (rerender) drawList();
  }
  function edit(change, rerender = false) {
    rows = structuredClone(rows); // a new value, so the change is seen and synced
    change(rows);
    if (rerender) commit(true);
    else {
      clearTimeout(timer);
      timer = setTimeout(() => commit(), 400);
    }
  }
  function select(i) {
    if (model.get("selected") === i) return;
    model.set("selected", i);
    model.save_changes();
  }
  function click(trait) {
    model.set(trait, model.get(trait) + 1);
    model.save_changes();
  }

  // ---- toolbar -----------------------------------------------------------------------------
  const starterSelect = h("select", {
    class: "sftlab-starter-select", title: "A starter dataset written for the workshop",
    onchange: () => { model.set("starter_choice", starterSelect.value); model.save_changes(); },
  });
  const search = h("input", {
    type: "search", class: "sftlab-search", placeholder: "Search examples",
    oninput: () => { model.set("query", search.value); model.save_changes(); applyFilter(); },
  });
  const flaggedOnly = h("input", { type: "checkbox", class: "sftlab-flagged-only", onchange: () => applyFilter() });
  const upload = h("input", {
    type: "file", class: "sftlab-upload", accept: ".jsonl,.json,.csv",
    onchange: async () => {
      const file = upload.files[0];
      if (!file) return;
      model.set("upload", { name: file.name, text: await file.text() });
      model.save_changes();
      upload.value = "";
    },
  });
  const importPath = h("input", {
    type: "text", class: "sftlab-import-path", placeholder: "path/to/data.jsonl",
    onchange: () => { model.set("import_path", importPath.value); model.save_changes(); },
  });
  const exportPath = h("input", {
    type: "text", class: "sftlab-export-path",
    onchange: () => { model.set("export_path", exportPath.value); model.save_changes(); },
  });
  const button = (cls, text, onclick, title) => h("button", { class: `sftlab-button ${cls}`, onclick, title }, text);
  const toolbar = h("div", { class: "sftlab-toolbar" },
    h("label", {}, "Starter ", starterSelect),
    button("sftlab-load-starter", "Load starter", () => {
      model.set("starter_choice", starterSelect.value);
      click("load_clicks");
    }, "Replace the list with this starter set (your current list is kept in a .previous.jsonl file)"),
    button("sftlab-add", "Add example", () => {
      edit((r) => r.push(structuredClone(EMPTY_EXAMPLE)), true);
      select(rows.length - 1);
      const card = list.lastElementChild;
      card?.scrollIntoView({ block: "nearest" });
      card?.querySelector("textarea")?.focus();
    }),
    search,
    h("label", { class: "sftlab-check" }, flaggedOnly, " only with warnings"),
  );
  const transfer = h("div", { class: "sftlab-toolbar" },
    h("label", { class: "sftlab-button sftlab-upload-label", title: "Add the examples of a .jsonl, .json or .csv file" },
      "Import file…", upload),
    importPath,
    button("sftlab-import", "Import path", () => {
      model.set("import_path", importPath.value);
      click("import_clicks");
    }, "Add the examples of the file at this path (on the kernel's machine)"),
    exportPath,
    button("sftlab-export", "Export", () => {
      model.set("export_path", exportPath.value);
      click("export_clicks");
    }, "Write the examples as JSONL"),
    h("span", { class: "sftlab-autosave" }),
  );
  const message = h("div", { class: "sftlab-message" });
  const error = h("div", { class: "sftlab-error", role: "alert" });
  const summary = h("div", { class: "sftlab-summary" });
  const list = h("div", { class: "sftlab-list" });
  const shown = h("div", { class: "sftlab-shown" });
  const detailTitle = h("div", { class: "sftlab-detail-title" });
  const preview = h("div", { class: "sftlab-preview" });
  const notes = h("details", { class: "sftlab-starter-notes" });
  const histogram = h("div", { class: "sftlab-histogram" });
  const legend = h("div", { class: "sftlab-legend" });
  const detail = h("div", { class: "sftlab-detail" },
    detailTitle,
    legend,
    preview, notes, histogram);
  el.classList.add("sftlab", "sftlab-dataset");
  keepKeys(el);
  el.append(toolbar, transfer, message, error, summary,
    h("div", { class: "sftlab-columns" }, h("div", { class: "sftlab-list-pane" }, shown, list), detail));

  // ---- the list ----------------------------------------------------------------------------
  function textCard(row, i) {
    // a plain-text record: one box, every token trained (the pre-training objective)
    return h("label", { class: "sftlab-field" },
      h("span", { class: "sftlab-field-label", title: "A plain text is trained like pre-training data: the loss is on every token" },
        "Text (every token trained)"),
      h("textarea", {
        class: "sftlab-text", rows: textRows(row.text),
        oninput: (e) => {
          e.target.rows = textRows(e.target.value);
          edit((r) => { r[i].text = e.target.value; });
        },
        onchange: () => commit(),
      }, row.text));
  }
  function card(row, i) {
    if (!row.messages) return exampleCard(row, i, null, textCard(row, i));
    const messages = row.messages;
    const sysIndex = messages.findIndex((m) => m.role === "system");
    const field = (label, cls, j) => h("label", { class: "sftlab-field" },
      h("span", { class: "sftlab-field-label" }, label),
      h("textarea", {
        class: cls, rows: textRows(messages[j].content), "data-turn": j,
        oninput: (e) => {
          e.target.rows = textRows(e.target.value); // the box grows with what is typed
          edit((r) => { r[i].messages[j].content = e.target.value; });
        },
        onchange: () => commit(),
      }, messages[j].content));
    const system = sysIndex >= 0 ? field("System", "sftlab-system", sysIndex) : null;
    // Add and Remove undo each other (a click on the header by mistake costs nothing)
    const systemButton = sysIndex >= 0
      ? button("sftlab-remove-system sftlab-small", "Remove system text", () => {
        edit((r) => r[i].messages.splice(sysIndex, 1), true);
      }, "Remove this example's system text (the chat template's default system text applies again)")
      : button("sftlab-add-system sftlab-small", "Add system text", () => {
        edit((r) => r[i].messages.unshift({ role: "system", content: "" }), true);
        list.children[i]?.querySelector(".sftlab-system")?.focus();
      }, "A system text sets the assistant's role for this example");
    const turns = messages.map((m, j) => (m.role === "system" ? null
      : field(turnLabel(messages, j), `sftlab-turn sftlab-${m.role}`, j)));
    return exampleCard(row, i, systemButton, [system, turns]);
  }
  function exampleCard(row, i, extraButton, body) {
    return h("div", { class: "sftlab-example", "data-index": i, onfocusin: () => select(i), onclick: () => select(i) },
      h("div", { class: "sftlab-example-head" },
        h("span", { class: "sftlab-example-title" }, `#${i + 1}`, row.id ? ` · ${row.id}` : ""),
        h("span", { class: "sftlab-badge sftlab-tokens" }),
        h("span", { class: "sftlab-badge sftlab-warn-count" }),
        h("span", { class: "sftlab-spacer" }),
        extraButton,
        button("sftlab-duplicate", "Duplicate", (e) => {
          e.stopPropagation();
          edit((r) => r.splice(i + 1, 0, structuredClone(r[i])), true);
          select(i + 1);
        }),
        button("sftlab-delete", "Delete", (e) => {
          e.stopPropagation();
          edit((r) => r.splice(i, 1), true);
          select(Math.min(i, rows.length - 1));
        })),
      body,
      h("ul", { class: "sftlab-warnings" }));
  }
  function drawList() {
    list.replaceChildren(...rows.map(card));
    drawReviews();
    drawSelected();
    applyFilter();
  }
  function drawReviews() {
    const reviews = model.get("reviews");
    [...list.children].forEach((node, i) => {
      const r = reviews[i] || { tokens: null, warnings: [] };
      node.querySelector(".sftlab-tokens").textContent = r.tokens == null ? "" : `${r.tokens} tokens`;
      const count = node.querySelector(".sftlab-warn-count");
      count.textContent = r.warnings.length ? `⚠ ${r.warnings.length}` : "";
      count.title = r.warnings.join("\n");
      node.classList.toggle("sftlab-flagged", r.warnings.length > 0);
      node.querySelector(".sftlab-warnings").replaceChildren(
        ...r.warnings.map((w) => h("li", { class: "sftlab-warning" }, w)));
    });
    applyFilter();
  }
  function applyFilter() {
    // words that start with what was typed ("cat" finds "cats", not "educate"); the cards
    // found are tinted, so a match is easy to see
    const q = search.value.trim().toLowerCase();
    const word = q ? new RegExp(`(^|[^\\p{L}\\p{N}])${q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "u") : null;
    let visible = 0;
    [...list.children].forEach((node, i) => {
      const found = !!word && word.test(exampleText(rows[i]));
      const ok = (!q || found) && (!flaggedOnly.checked || node.classList.contains("sftlab-flagged"));
      node.hidden = !ok;
      node.classList.toggle("sftlab-match", found);
      visible += ok;
    });
    shown.textContent = rows.length === 0 ? "No examples yet: load a starter, import a file or add one."
      : visible === rows.length ? plural(rows.length, "example") : `showing ${visible} of ${rows.length} examples`;
  }
  function drawSelected() {
    const i = model.get("selected");
    [...list.children].forEach((node, k) => node.classList.toggle("sftlab-selected", k === i));
  }

  // ---- details: preview, summary, status ------------------------------------------------
  function drawLegend() {
    const trained = h("span", { class: "sftlab-tok sftlab-trained" }, "trained");
    const cut = [h("span", { class: "sftlab-tok sftlab-trained sftlab-cut" }, "cut"), " beyond max_length"];
    legend.replaceChildren(...(model.get("completion_only")
      ? [trained, " response + end-of-turn: the loss is on these · ",
        h("span", { class: "sftlab-tok sftlab-context" }, "context"), " prompt + template: seen, not trained · ", ...cut]
      : [trained, " every token, prompt and template too (full-sequence loss is on) · ", ...cut]));
  }
  function drawPreview() {
    const i = model.get("selected");
    const tokens = model.get("preview");
    const r = model.get("reviews")[i];
    if (!model.get("has_tokenizer")) {
      detailTitle.textContent = "No tokenizer: token counts and the mask preview are off.";
    } else if (i < 0 || !rows[i]) {
      detailTitle.textContent = "Select an example to see what the model is trained on.";
    } else {
      const trained = tokens.filter((t) => t[1] && !t[2]).length;
      detailTitle.textContent = `Example ${i + 1}: ${tokens.length} tokens, ${trained} trained`
        + (r && r.warnings.length ? ` · ⚠ ${r.warnings.length}` : "");
    }
    preview.replaceChildren(...tokens.map(([text, trained, cut]) => h("span", {
      class: `sftlab-tok ${trained ? "sftlab-trained" : "sftlab-context"}${cut ? " sftlab-cut" : ""}`,
      title: JSON.stringify(text),
    }, text.replace(/\n/g, "↵\n"))));
  }
  function drawSummary() {
    const s = model.get("summary");
    if (!s.count) { summary.replaceChildren(); return; }
    const within = s.trained_within;
    const parts = [plural(s.count, "example"), within == null || within === s.trainable
      ? `${s.trainable} trainable` : `${within} of ${s.trainable} trainable at max_length ${model.get("max_length")}`];
    if (s.multi_turn) parts.push(`${s.multi_turn} multi-turn`);
    if (s.tokens) parts.push(`tokens: mean ${Math.round(s.tokens.mean)}, min ${s.tokens.min}, max ${s.tokens.max}`);
    if (s.over_max_length) parts.push(`${s.over_max_length} over max_length ${model.get("max_length")}`);
    parts.push(s.warnings ? `⚠ ${plural(s.warnings, "warning")} on ${plural(s.flagged, "example")}` : "no warnings");
    const wasOpen = summary.querySelector("details")?.open;
    const items = model.get("reviews").flatMap((r, i) => r.warnings.map((w) => h("li", {
      class: "sftlab-warning sftlab-goto", title: "Show this example",
      onclick: () => { select(i); list.children[i]?.scrollIntoView({ block: "nearest" }); },
    }, w)));
    summary.replaceChildren(h("span", {}, parts.join(" · ")),
      ...(s.dataset_issues || []).map((m) => h("div", { class: "sftlab-warning" }, m)),
      ...(items.length ? [h("details", { open: wasOpen || null }, h("summary", {}, "All warnings"), h("ul", {}, items))] : []));
  }
  function drawStarters() {
    starterSelect.replaceChildren(...model.get("starters").map((n) => h("option", { value: n }, n)));
    starterSelect.value = model.get("starter_choice");
  }
  function drawStatus() {
    message.textContent = model.get("message");
    error.textContent = model.get("error");
    error.hidden = !model.get("error");
    const text = model.get("starter_notes");
    notes.replaceChildren(h("summary", {}, `About the starter '${model.get("starter")}'`), markdown(text));
    notes.hidden = !text;
    transfer.querySelector(".sftlab-autosave").textContent = model.get("path")
      ? `autosaved to ${model.get("path")}` : "not autosaved";
  }

  model.on("change:rows", () => {
    if (ownEdit) return;
    clearTimeout(timer);
    rows = model.get("rows");
    drawList();
  });
  model.on("change:reviews", () => { drawReviews(); drawSummary(); });
  model.on("change:selected", () => { drawSelected(); drawPreview(); });
  model.on("change:preview", drawPreview);
  model.on("change:summary", drawSummary);
  model.on("change:completion_only", drawLegend);
  model.on("change:starters", drawStarters);
  model.on("change:starter_choice", () => { starterSelect.value = model.get("starter_choice"); });
  for (const name of ["message", "error", "starter_notes", "starter", "path"]) model.on(`change:${name}`, drawStatus);

  search.value = model.get("query");
  importPath.value = model.get("import_path");
  exportPath.value = model.get("export_path");
  drawStarters();
  drawLegend();
  drawList();
  drawPreview();
  drawSummary();
  drawStatus();
  const unwatch = drawFigures(host, model, [["histogram", histogram, "histogram"]]);
  return () => {
    if (unwatch) unwatch();
    if (timer) commit();
  };
}

export default { render };
