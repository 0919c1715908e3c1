"""Figures and tables for what-if experiments: loss curves of many runs, and one row per run.

Pure functions over run cards (`lab.experiments.load_cards`) and their metrics
(`lab.experiments.load_curve`); the experiments widget draws the figure in a chart,
notebooks can show it directly.

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

from ..present.plots import style

# plotly's default qualitative palette, so a run keeps its colour however many runs there are
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a",
           "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52")
_RUNS = dict(height=300, legend=dict(title_text="run", font=dict(size=11)))  # many runs: a legend of names


def group_name(card: dict) -> str:
    """The name of the variant a run belongs to: a run repeated over seeds shares it.

    >>> group_name({"experiment": "sizes", "variant": {"name": "n=10 s1", "group": "n=10"}})
    'sizes/n=10'
    """
    variant = card.get("variant") or {}
    return f"{card.get('experiment', '?')}/{variant.get('group') or variant.get('name', '?')}"


def run_name(card: dict) -> str:
    """The name a run goes by in tables and legends: `experiment/variant`.

    >>> run_name({"experiment": "sizes", "variant": {"name": "n=10"}})
    'sizes/n=10'
    """
    return f"{card.get('experiment', '?')}/{(card.get('variant') or {}).get('name', '?')}"


def is_full_sequence(card: dict) -> bool:
    """True when the run put loss on every token (its loss is on another scale)."""
    return (card.get("config") or {}).get("completion_only") is False


def _band(x: list, low: list, high: list, color: str, name: str) -> go.Scatter:
    """A min-max band: the polygon over `high` and back under `low`."""
    return go.Scatter(x=list(x) + list(reversed(x)), y=list(high) + list(reversed(low)), fill="toself",
                      fillcolor=color, opacity=0.2, line=dict(width=0), hoverinfo="skip",
                      name=f"{name} (min-max)", showlegend=False, mode="lines")


def overlay_losses(curves: dict[str, list[dict]], *, dashed: Iterable[str] = (),
                   groups: dict[str, list[str]] | None = None) -> go.Figure:
    """Training loss per optimiser step, one line per run (legend entries in `curves`' order).

    `curves` maps run name -> metric rows (`{"step", "loss", ...}`; rows without "loss",
    such as eval rows, are skipped). Runs named in `dashed` are drawn dashed: use it for
    full-sequence-loss runs, whose loss also counts the (easier) prompt tokens and so is not
    on the same scale as completion-only runs. `groups` (group name -> its runs' names) draws
    a variant repeated over seeds as its mean line with a min-max band instead.
    """
    dashed = set(dashed)
    grouped = {name for names in (groups or {}).values() if len(names) > 1 for name in names}
    traces = []
    lines = [(n, [curves[n]]) for n in curves if n not in grouped]
    lines += [(g, [curves[n] for n in names if n in curves]) for g, names in (groups or {}).items()
              if len(names) > 1 and any(n in curves for n in names)]
    for i, (name, runs_) in enumerate(lines):
        color = PALETTE[i % len(PALETTE)]
        by_step: dict[int, list[float]] = {}
        for rows in runs_:
            for r in rows:
                if "loss" in r and "step" in r:
                    by_step.setdefault(r["step"], []).append(r["loss"])
        steps = sorted(by_step)
        if len(runs_) > 1:
            traces.append(_band(steps, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps],
                                color, name))
        label = f"{name} (mean of {len(runs_)} seeds)" if len(runs_) > 1 else name
        traces.append(go.Scatter(
            x=steps, y=[sum(by_step[s]) / len(by_step[s]) for s in steps], mode="lines+markers", name=label,
            line=dict(color=color, dash="dash" if name in dashed or any(
                n in dashed for n in (groups or {}).get(name, [])) else "solid"),
            marker=dict(size=4),
            hovertemplate=f"{name}<br>step %{{x}}<br>loss %{{y:.3f}}<extra></extra>"))
    fig = go.Figure(traces)
    title = "Training loss per run (NLL per trained token)"
    if not traces:
        title += " — no runs yet"
    return style(fig, title, **_RUNS, xaxis_title="optimiser step", yaxis_title="loss",
                 yaxis_rangemode="tozero")


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


def _spread(values: list[float]) -> dict:
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values), "n": len(values)}


def group_rows(cards: Iterable[dict]) -> list[dict]:
    """One row per variant over its seeds: held-out NLL and probe similarity as mean, sd, min,
    max; `overlaps_best` when its min-max band overlaps that of the variant with the lowest
    mean NLL (the difference may be noise), `best` for that variant.

    >>> cards = [{"experiment": "e", "variant": {"name": f"a s{i}", "group": "a"}, "eval_nll": v, "status": "done"}
    ...          for i, v in enumerate((1.0, 1.2))] + [
    ...         {"experiment": "e", "variant": {"name": f"b s{i}", "group": "b"}, "eval_nll": v, "status": "done"}
    ...          for i, v in enumerate((1.1, 1.3))] + [
    ...         {"experiment": "e", "variant": {"name": f"c s{i}", "group": "c"}, "eval_nll": v, "status": "done"}
    ...          for i, v in enumerate((2.0, 2.2))]
    >>> [(r["variant"], round(r["eval_nll"]["mean"], 2), r["best"], r["overlaps_best"]) for r in group_rows(cards)]
    [('e/a', 1.1, True, False), ('e/b', 1.2, False, True), ('e/c', 2.1, False, False)]
    """
    groups: dict[str, list[dict]] = {}
    for card in cards:
        groups.setdefault(group_name(card), []).append(card)
    rows = []
    for name, members in groups.items():
        nll = [c["eval_nll"] for c in members if isinstance(c.get("eval_nll"), (int, float))]
        sim = [c["probe_similarity"] for c in members if isinstance(c.get("probe_similarity"), (int, float))]
        rows.append({"variant": name, "runs": len(members), "examples": members[0].get("n_examples"),
                     "done": sum(c.get("status") in ("done", "stopped") for c in members),
                     "eval_nll": _spread(nll) if nll else None,
                     "probe_similarity": _spread(sim) if sim else None,
                     "best": False, "overlaps_best": False})
    scored = [r for r in rows if r["eval_nll"]]
    if scored:
        best = min(scored, key=lambda r: r["eval_nll"]["mean"])
        best["best"] = True
        for r in scored:
            if r is not best:
                r["overlaps_best"] = r["eval_nll"]["min"] <= best["eval_nll"]["max"]
    return rows


def ladder_figure(cards: Iterable[dict]) -> go.Figure:
    """How many examples do I need: held-out NLL and probe similarity against the number of
    training examples (log scale), mean over seeds with a min-max band."""
    from plotly.subplots import make_subplots

    rows = sorted((r for r in group_rows(cards) if r["examples"]), key=lambda r: r["examples"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "held-out NLL (lower is better)", "probe replies: words in common with the reference"))
    for col, key, color in ((1, "eval_nll", PALETTE[0]), (2, "probe_similarity", PALETTE[2])):
        pts = [(r["examples"], r[key]) for r in rows if r[key]]
        x = [n for n, _ in pts]
        if any(v["n"] > 1 for _, v in pts):
            fig.add_trace(_band(x, [v["min"] for _, v in pts], [v["max"] for _, v in pts], color, key), 1, col)
        fig.add_trace(go.Scatter(x=x, y=[v["mean"] for _, v in pts], mode="lines+markers", showlegend=False,
                                 line=dict(color=color), marker=dict(size=7),
                                 hovertemplate="%{x} examples: %{y:.3f}<extra></extra>"), 1, col)
        fig.update_xaxes(type="log", title_text="training examples", row=1, col=col)
    return style(fig, "How many examples do I need?", height=320, showlegend=False)
