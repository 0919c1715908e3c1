// Gallery front end: the leaderboard, broken submissions, what separates the top third,
// one or two submissions opened side by side, Refresh and Export. State lives in
// widgets/gallery.py; every name and text goes in as a text node (h() appends text).

function render({ model, el }) {
  const set = (name, value) => { model.set(name, value); model.save_changes(); };
  const click = (trait) => set(trait, model.get(trait) + 1);
  const fmt = (x, d = 3) => (typeof x === "number" && isFinite(x) ? (Number.isInteger(x) ? String(x) : x.toFixed(d)) : "—");
  const head = h("div", { class: "sftlab-gallery-head" });
  const refresh = h("button", { class: "sftlab-button sftlab-gallery-refresh", onclick: () => click("refresh_clicks") }, "Refresh");
  const path = h("input", { type: "text", class: "sftlab-gallery-path", onchange: () => set("export_path", path.value) });
  const exportButton = h("button", { class: "sftlab-button sftlab-gallery-export", title: "The whole class in one HTML file that opens offline",
    onclick: () => { model.set("export_path", path.value); click("export_clicks"); } }, "Export HTML");
  const updated = h("span", { class: "sftlab-muted sftlab-gallery-updated" });
  const message = h("div", { class: "sftlab-message sftlab-gallery-message" });
  const error = h("div", { class: "sftlab-error sftlab-gallery-error", role: "alert" });
  const board = h("div", { class: "sftlab-gallery-board" });
  const broken = h("div", { class: "sftlab-gallery-broken-list" });
  const sep = h("div", { class: "sftlab-gallery-separates" });
  const opened = h("div", { class: "sftlab-gallery-opened" });

  el.classList.add("sftlab", "sftlab-gallery");
  keepKeys(el);
  el.append(head, h("div", { class: "sftlab-toolbar" }, refresh, path, exportButton, updated),
    message, error, board, broken, sep, opened);

  const COLS = [["rank", "#", "3em"], ["name", "participant", "18%"], ["held_out_nll", "held-out NLL", null],
    ["checks", "checks passed", null], ["examples", "examples", null], ["tokens", "tokens", null],
    ["duplicates", "duplicates", null], ["diversity", "diversity", null], ["covered", "topics covered", null],
    ["attempts", "attempts", null], ["open", "", "12em"]];

  function toggle(folder, side) {
    let now = [...model.get("opened")];
    if (side) now = now.length ? [now[0], folder] : [folder];
    else now = now.length === 1 && now[0] === folder ? [] : [folder];
    set("opened", now.filter((f, i, a) => a.indexOf(f) === i));
  }

  function drawBoard() {
    const c = model.get("challenge") || {};
    head.replaceChildren(h("b", {}, `Gallery: ${c.title || ""}`),
      h("span", { class: "sftlab-muted" }, ` · ${model.get("rows").length} participants ranked by held-out NLL (lower is better) on ${c.held_out} prompts`));
    const open = model.get("opened");
    const rows = model.get("rows").map((r) => h("tr", { "data-folder": r.folder, class: open.includes(r.folder) ? "sftlab-opened" : "" },
      COLS.map(([key]) => {
        if (key === "open") {
          return h("td", {}, h("button", { class: "sftlab-button sftlab-small sftlab-gallery-open", onclick: () => toggle(r.folder, false) }, "Open"), " ",
            h("button", { class: "sftlab-button sftlab-small sftlab-gallery-beside", title: "Open beside the one shown", onclick: () => toggle(r.folder, true) }, "Beside"));
        }
        if (key === "covered") return h("td", { class: "sftlab-num" }, `${r.covered} / ${r.topics}`);
        const v = r[key];
        const num = typeof v === "number";
        return h("td", { class: num ? "sftlab-num" : "", title: key === "name" && r.participant ? r.participant : null }, num ? fmt(v, key === "diversity" ? 2 : 3) : String(v ?? "—"));
      })));
    board.replaceChildren(rows.length ? h("table", { class: "sftlab-gallery-table" },
      h("colgroup", {}, COLS.map(([, , w]) => h("col", { style: w ? `width: ${w}` : null }))),
      h("thead", {}, h("tr", {}, COLS.map(([, label]) => h("th", {}, label)))), h("tbody", {}, rows))
      : h("div", { class: "sftlab-muted" }, "No submissions yet: they show here as they land."));
    const bad = model.get("broken");
    broken.replaceChildren(...(bad.length ? [h("div", { class: "sftlab-meta" }, "Not scored:"),
      h("table", { class: "sftlab-gallery-table sftlab-gallery-broken" }, h("tbody", {}, bad.map((b) =>
        h("tr", { "data-folder": b.folder }, h("td", {}, b.folder), h("td", {}, b.status), h("td", {}, b.problem)))))] : []));
    const s = model.get("separates");
    sep.replaceChildren(...(s.length ? [h("div", { class: "sftlab-meta" }, `What separates the top third (${s[0].top_n}) from the rest (${s[0].rest_n}): means`),
      h("table", { class: "sftlab-gallery-table sftlab-gallery-sep" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "top third"), h("th", {}, "the rest"))),
        h("tbody", {}, s.map((x) => h("tr", { "data-trait": x.key }, h("td", {}, x.trait),
          h("td", { class: "sftlab-num" }, fmt(x.top, 2)), h("td", { class: "sftlab-num" }, fmt(x.rest, 2))))))] : []));
    updated.textContent = model.get("updated") ? `read at ${model.get("updated")}` : "";
    message.textContent = model.get("message");
    error.textContent = model.get("error");
    error.hidden = !model.get("error");
    if (document.activeElement !== path) path.value = model.get("export_path");
  }

  function drawOpened() {
    const detail = model.get("detail");
    opened.replaceChildren();
    if (!detail.length) return;
    opened.append(h("div", { class: "sftlab-meta" }, detail.length === 2
      ? "Side by side: the second one's replies marked where they differ from the first's" : "Opened:"));
    opened.append(h("div", { class: "sftlab-gallery-sides" }, detail.map((d, i) => h("div", { class: "sftlab-gallery-side", "data-folder": d.folder },
      h("b", {}, `#${d.rank} ${d.name}`), h("span", { class: "sftlab-muted" }, ` · held-out NLL ${fmt(d.nll)}`),
      h("div", { class: "sftlab-meta" }, "Replies to the public probes"),
      h("table", { class: "sftlab-gallery-table sftlab-gallery-replies" }, h("tbody", {}, d.replies.map((r) =>
        h("tr", {}, h("td", { class: "sftlab-gallery-text sftlab-prompt-cell" }, r.prompt),
          h("td", { class: "sftlab-gallery-text" }, i && r.diff ? diffView(r.diff, "the first one's reply") : (r.reply || "(empty)")))))),
      h("div", { class: "sftlab-meta" }, `Dataset: ${d.dataset.length} examples`),
      h("table", { class: "sftlab-gallery-table sftlab-gallery-dataset" }, h("tbody", {}, d.dataset.map((x, n) =>
        h("tr", {}, h("td", { style: "width: 2.5em" }, String(n + 1)), h("td", { class: "sftlab-gallery-text" }, x.prompt),
          h("td", { class: "sftlab-gallery-text" }, x.response)))))))));
  }

  for (const name of ["challenge", "rows", "broken", "separates", "opened", "updated", "message", "error", "export_path"]) {
    model.on(`change:${name}`, drawBoard);
  }
  model.on("change:detail", drawOpened);
  drawBoard();
  drawOpened();
}

export default { render };
