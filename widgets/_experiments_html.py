"""HTML for the experiments view's tables: run status, held-out NLL with probe replies, and
two runs side by side. Pure functions of plain rows, so tests can read what a person sees.

Every piece of user or model text goes through `html.escape`. Long probe replies are cut
short in the cell; the full text is on hover (`title`) and one click away (`<details>`).
"""
from __future__ import annotations

import html
import math

from ._common import CSS

def css() -> str:
    """The lab's one style sheet (widgets/static/sftlab.css) as a <style> element: the
    experiments view is built from ipywidgets, which load no style sheet of their own."""
    return f"<style>{CSS.read_text()}</style>"

_e = html.escape


def _num(x, digits: int = 3) -> str:
    if not isinstance(x, (int, float)) or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def clip(text: str, n: int = 60) -> str:
    """`text` on one line, cut to `n` characters with an ellipsis.

    >>> clip("a  b\\nc", 10), clip("abcdefghij", 5)
    ('a b c', 'abcd…')
    """
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def expandable(text: str, n: int = 60) -> str:
    """A cell showing `text` cut short, with the full text on hover and on click."""
    short = clip(text, n)
    if short == " ".join(text.split()):
        return f'<span class="sftlab-reply">{_e(text) or "<i>(empty)</i>"}</span>'
    return (f'<details class="sftlab-reply" title="{_e(text, quote=True)}"><summary>{_e(short)}'
            f'</summary>{_e(text)}</details>')


def status_table(rows: list[dict]) -> str:
    """Rows `{run, status, step, total, note}`: one line per run, with a progress bar."""
    if not rows:
        return '<p class="sftlab-muted">No runs yet: define a variant and press "Add to queue".</p>'
    out = [('<table class="sftlab-exp-table sftlab-exp-status-table"><tr><th>run</th><th>status</th>'
            '<th>progress</th><th>note</th></tr>')]
    for r in rows:
        step, total = r.get("step") or 0, r.get("total") or 0
        bar = (f'<progress value="{step}" max="{total}"></progress> {step}/{total}' if total
               else "")
        note = r.get("note") or ""
        note_cls = ' class="sftlab-error"' if r["status"] == "failed" else ""
        out.append(f'<tr data-run="{_e(r["run"], quote=True)}"><td>{_e(r["run"])}</td>'
                   f'<td class="sftlab-status sftlab-status-{_e(r["status"])}">{_e(r["status"])}</td>'
                   f'<td>{bar}</td><td{note_cls}>{_e(note)}</td></tr>')
    out.append("</table>")
    return "".join(out)


def nll_table(rows: list[dict], reply_chars: int = 60) -> str:
    """Rows from `lab.experiments.plots.nll_table_rows`: numbers, then one column per probe."""
    if not rows:
        return '<p class="sftlab-muted">Finished runs will be listed here.</p>'
    prompts: list[str] = []
    for r in rows:
        prompts += [p["prompt"] for p in r["probes"] if p["prompt"] not in prompts]
    head = "".join(f'<th class="sftlab-probe" title="{_e(p, quote=True)}">probe: {_e(clip(p, 30))}</th>'
                   for p in prompts)
    out = [('<div class="sftlab-exp-scroll"><table class="sftlab-exp-table sftlab-exp-nll-table"><tr><th>run</th><th>status</th>'
            '<th>examples</th><th>steps</th><th title="mean loss of the last steps">final train loss</th>'
            '<th title="mean NLL per response token of the held-out set (lower is better)">held-out NLL</th>'
            f'{head}</tr>')]
    for r in rows:
        replies = {p["prompt"]: p["reply"] for p in r["probes"]}
        loss = _num(r["final_loss"]) + (" *" if r["full_sequence_loss"] else "")
        best = ' sftlab-best' if r["best"] else ""
        cells = "".join(f'<td class="sftlab-probe">{expandable(replies[p], reply_chars)}</td>' if p in replies
                        else '<td class="sftlab-probe sftlab-muted">—</td>' for p in prompts)
        out.append(f'<tr data-run="{_e(r["run"], quote=True)}"><td>{_e(r["run"])}</td>'
                   f'<td class="sftlab-status sftlab-status-{_e(r["status"])}">{_e(r["status"])}</td>'
                   f'<td class="sftlab-num">{_num(r["examples"])}</td><td class="sftlab-num">{_num(r["steps"])}</td>'
                   f'<td class="sftlab-num">{loss}</td><td class="sftlab-num{best}">{_num(r["eval_nll"])}</td>'
                   f"{cells}</tr>")
    out.append("</table></div>")
    if any(r["full_sequence_loss"] for r in rows):
        out.append('<p class="sftlab-muted">* loss on every token (prompt too), not only the response: '
                   "not on the same scale as the others. The held-out NLL is always on responses only.</p>")
    if not any(isinstance(r["eval_nll"], (int, float)) for r in rows):
        out.append('<p class="sftlab-muted">No held-out NLL: give the view <code>eval_data</code> '
                   "(examples the runs never train on).</p>")
    return "".join(out)


def group_table(rows: list[dict]) -> str:
    """Rows from `lab.experiments.plots.group_rows`: each variant over its seeds, held-out NLL
    as mean, sd and min-max, and whether its range overlaps the best variant's."""
    if not rows:
        return ""
    out = ['<div class="sftlab-exp-scroll"><table class="sftlab-exp-table sftlab-exp-group-table"><tr>'
           '<th>variant</th><th>runs</th><th>examples</th>'
           '<th title="mean over the seeds (lower is better)">held-out NLL</th><th>sd</th><th>min-max</th>'
           '<th title="words the probe replies share with the references">probe similarity</th><th>verdict</th></tr>']
    for r in rows:
        nll, sim = r["eval_nll"], r["probe_similarity"]
        verdict = ("lowest mean" if r["best"] else "overlaps the best: may be noise" if r["overlaps_best"]
                   else "clearly worse" if nll else "—")
        cls = ' class="sftlab-best"' if r["best"] else ' class="sftlab-muted"' if r["overlaps_best"] else ""
        span = f"{nll['min']:.3f}-{nll['max']:.3f}" if nll else "—"
        out.append(f'<tr data-variant="{_e(r["variant"], quote=True)}"><td>{_e(r["variant"])}</td>'
                   f'<td class="sftlab-num">{r["runs"]}</td><td class="sftlab-num">{_num(r["examples"])}</td>'
                   f'<td class="sftlab-num">{_num(nll["mean"]) if nll else "—"}</td>'
                   f'<td class="sftlab-num">{_num(nll["sd"]) if nll else "—"}</td>'
                   f'<td class="sftlab-num">{span}</td>'
                   f'<td class="sftlab-num">{_num(sim["mean"]) if sim else "—"}</td><td{cls}>{verdict}</td></tr>')
    out.append('</table></div><p class="sftlab-muted">Each variant over its seeds. A variant whose '
               "min-max range overlaps the best one's is not shown to be worse: one seed could rank "
               "them the other way round.</p>")
    return "".join(out)


def diff_html(pieces: list[tuple[str, str]]) -> str:
    """A word diff (`lab.textdiff.word_diff`) as text with <del> and <ins>.

    >>> diff_html([("equal", "a "), ("delete", "b"), ("insert", "<c>")])
    'a <del>b</del><ins>&lt;c&gt;</ins>'
    """
    tags = {"equal": "{}", "delete": "<del>{}</del>", "insert": "<ins>{}</ins>"}
    return "".join(tags[op].format(_e(text)) for op, text in pieces)


def compare_table(rows: list[dict], info: dict[str, str] | None = None) -> str:
    """Rows from `lab.comparison.make_row` with two columns: prompt, run A, run B (diffed vs A).

    `info` maps run name -> a short line (e.g. its held-out NLL) shown under the header.
    """
    if not rows:
        return ""
    names = [c["name"] for c in rows[0]["columns"]]
    info = info or {}
    head = "".join(f'<th>{_e(n)}<br><span class="sftlab-muted">{_e(info.get(n, ""))}</span></th>'
                   for n in names)
    out = [f'<table class="sftlab-exp-table sftlab-exp-compare-table"><tr><th>prompt</th>{head}</tr>']
    for row in rows:
        cells = []
        for col in row["columns"]:
            body = diff_html(col["diff"]) if col["diff"] is not None else _e(col["reply"])
            cells.append(f'<td class="sftlab-reply">{body or "<i>(empty)</i>"}</td>')
        out.append(f'<tr><td class="sftlab-reply">{_e(row["prompt"])}</td>{"".join(cells)}</tr>')
    out.append('</table><p class="sftlab-muted">Second column: <del>words only in the first</del> '
               "<ins>words only in the second</ins>.</p>")
    return "".join(out)


def error_html(text: str) -> str:
    return f'<div class="sftlab-error">{_e(text)}</div>' if text else ""
