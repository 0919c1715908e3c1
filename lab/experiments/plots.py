"""Figures and tables for what-if experiments: loss curves of many runs, and one row per run.

Pure functions over run cards (`lab.experiments.load_cards`) and their metrics
(`lab.experiments.load_curve`); the experiments widget wraps the figure in a
`go.FigureWidget`, notebooks can show it directly.

>>> fig = overlay_losses({"e/n=2": [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}],
...                       "e/full": [{"step": 1, "loss": 4.0}]}, dashed=["e/full"])
>>> [(t.name, list(t.y), t.line.dash) for t in fig.data]
[('e/n=2', [3.0, 2.5], 'solid'), ('e/full', [4.0], 'dash')]
>>> card = {"experiment": "e", "variant": {"name": "n=2"}, "status": "done", "n_examples": 2,
...         "steps": 2, "final_loss": 2.75, "eval_nll": 3.1, "probes": [{"prompt": "Hi", "reply": "Yo"}]}
>>> row = nll_table_rows([card])[0]
>>> row["run"], row["eval_nll"], row["probes"]
('e/n=2', 3.1, [{'prompt': 'Hi', 'reply': 'Yo'}])
"""
from __future__ import annotations

from typing import Iterable

import plotly.graph_objects as go

# plotly's default qualitative palette, so a run keeps its colour however many runs there are
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a",
           "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52")
_LAYOUT = dict(height=300, margin=dict(l=50, r=20, t=40, b=40), template="plotly_white",
               legend=dict(title_text="run", font=dict(size=11)))


def run_name(card: dict) -> str:
    """The name a run goes by in tables and legends: `experiment/variant`.

    >>> run_name({"experiment": "sizes", "variant": {"name": "n=10"}})
    'sizes/n=10'
    """
    return f"{card.get('experiment', '?')}/{(card.get('variant') or {}).get('name', '?')}"


def is_full_sequence(card: dict) -> bool:
    """True when the run put loss on every token (its loss is on another scale)."""
    return (card.get("config") or {}).get("completion_only") is False


def overlay_losses(curves: dict[str, list[dict]], *, dashed: Iterable[str] = ()) -> go.Figure:
    """Training loss per optimiser step, one line per run (legend entries in `curves`' order).

    `curves` maps run name -> metric rows (`{"step", "loss", ...}`; rows without "loss",
    such as eval rows, are skipped). Runs named in `dashed` are drawn dashed: use it for
    full-sequence-loss runs, whose loss also counts the (easier) prompt tokens and so is not
    on the same scale as completion-only runs.
    """
    dashed = set(dashed)
    traces = []
    for i, (name, rows) in enumerate(curves.items()):
        pts = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
        traces.append(go.Scatter(
            x=[s for s, _ in pts], y=[v for _, v in pts], mode="lines+markers", name=name,
            line=dict(color=PALETTE[i % len(PALETTE)], dash="dash" if name in dashed else "solid"),
            marker=dict(size=4),
            hovertemplate=f"{name}<br>step %{{x}}<br>loss %{{y:.3f}}<extra></extra>"))
    fig = go.Figure(traces)
    title = "Training loss per run (NLL per trained token)"
    if not traces:
        title += " — no runs yet"
    fig.update_layout(**_LAYOUT, title=dict(text=title, font=dict(size=13)),
                      xaxis_title="optimiser step", yaxis_title="loss", yaxis_rangemode="tozero")
    return fig


def nll_table_rows(cards: Iterable[dict]) -> list[dict]:
    """One plain row per run card: outcome, held-out NLL and probe replies, for tables.

    Missing numbers (a failed run, no eval set) are None. `best` marks the run(s) with the
    lowest held-out NLL, the usual first thing to look at.
    """
    rows = []
    for card in cards:
        rows.append({
            "run": run_name(card),
            "experiment": card.get("experiment"),
            "variant": (card.get("variant") or {}).get("name"),
            "status": card.get("status", "?"),
            "examples": card.get("n_examples"),
            "steps": card.get("steps"),
            "final_loss": card.get("final_loss"),
            "eval_nll": card.get("eval_nll"),
            "full_sequence_loss": is_full_sequence(card),
            "seconds": card.get("seconds"),
            "probes": [{"prompt": p.get("prompt", ""), "reply": p.get("reply", "")}
                       for p in card.get("probes") or []],
            "error": card.get("error"),
            "path": card.get("path"),
            "best": False,
        })
    scored = [r["eval_nll"] for r in rows if isinstance(r["eval_nll"], (int, float))]
    if scored:
        for r in rows:
            r["best"] = r["eval_nll"] == min(scored)
    return rows
