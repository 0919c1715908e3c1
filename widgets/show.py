"""Small display helpers for the workshop notebooks: tables, coloured tokens, replies side by side.

Each function returns an `IPython.display.HTML` object, so the last line of a cell shows it.
They only format what `lab/` computed; nothing here trains, scores or generates.

>>> table([{"run": "a", "nll": 1.23456}]).data.count("<tr>")
2
"""
from __future__ import annotations

import html

from IPython.display import HTML

TRAINED = "#b7e4c7"      # green: the model is trained to predict this token
NOT_TRAINED = "#e9ecef"  # grey: context only, no loss
_CELL = "border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left"


def _fmt(value, digits: int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if value is None:
        return ""
    return html.escape(str(value)).replace("\n", "<br>")


def table(rows: list[dict], columns: list[str] | None = None, digits: int = 3,
          max_width: int = 420) -> HTML:
    """A plain HTML table: one row per dict, one column per key (first-seen order)."""
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    head = "".join(f"<th style='{_CELL};background:#f8f9fa'>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='{_CELL};max-width:{max_width}px'>{_fmt(row.get(c), digits)}</td>"
                         for c in columns) + "</tr>"
        for row in rows)
    return HTML(f"<table style='border-collapse:collapse;font-size:13px'><tr>{head}</tr>{body}</table>")


def tokens(preview: list[tuple[str, bool]], legend: bool = True) -> HTML:
    """`lab.masks.token_preview` output as coloured tokens: green = trained, grey = not trained."""
    spans = []
    for text, trained in preview:
        shown = html.escape(text).replace("\n", "↵<br>")
        color = TRAINED if trained else NOT_TRAINED
        spans.append(f"<span style='background:{color};border-right:1px solid #fff;"
                     f"font-family:monospace;font-size:12px'>{shown}</span>")
    n_trained = sum(trained for _, trained in preview)
    key = (f"<div style='margin-bottom:4px;font-size:12px'><span style='background:{TRAINED}'>"
           f"&nbsp;trained ({n_trained} tokens)&nbsp;</span> <span style='background:{NOT_TRAINED}'>"
           f"&nbsp;not trained ({len(preview) - n_trained} tokens)&nbsp;</span></div>") if legend else ""
    return HTML(key + "<div style='line-height:1.9'>" + "".join(spans) + "</div>")


def conversations(convs, n: int | None = None) -> HTML:
    """Conversations (`lab.records.Conversation`) as a table: system, user and assistant text."""
    rows = []
    for c in list(convs)[:n]:
        rows.append({"id": c.id or "", "tags": ", ".join(c.tags), "system": c.system or "",
                     "instruction (user)": c.prompt, "response (assistant)": c.response or ""})
    return table(rows)


def probabilities(pairs: list[tuple[str, float]]) -> HTML:
    """Response tokens shaded by the probability the model gave them (white = 1, red = 0)."""
    spans = []
    for text, p in pairs:
        red = int(255 * p)
        spans.append(f"<span title='p = {p:.3f}' style='background:rgb(255,{red},{red});"
                     f"font-family:monospace;font-size:12px'>{html.escape(text)}</span>")
    return HTML("<div style='line-height:1.9'>" + "".join(spans) + "</div>")
