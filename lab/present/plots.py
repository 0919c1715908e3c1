"""Figures the lab draws, as pure functions returning a plotly `go.Figure`.

The widgets draw them in a `widgets.chart.Chart`; notebooks and scripts can show or save them
directly.

>>> loss_series([{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}, {"step": 2, "eval_loss": 2.2}])
{'train_x': [1, 2], 'train_y': [2.5, 2.0], 'eval_x': [2], 'eval_y': [2.2]}
"""
from __future__ import annotations

from typing import Iterable

import plotly.graph_objects as go

_LAYOUT = dict(height=260, margin=dict(l=50, r=20, t=40, b=40), template="plotly_white",
               legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))


def style(fig: go.Figure, title: str, **layout) -> go.Figure:
    """The lab's one look for a figure: size, margins, template, legend, and the title on the
    left (clear of plotly's toolbar on the right); `layout` adds or overrides settings."""
    fig.update_layout(**{**_LAYOUT, **layout}, title=dict(text=title, font=dict(size=13), x=0.01, xanchor="left"))
    return fig


def length_histogram(lengths: Iterable[int], max_length: int | None = None) -> go.Figure:
    """Token lengths of the examples, with `max_length` drawn as a dashed line.

    Bars right of the line are examples that training will cut short.
    """
    lengths = list(lengths)
    fig = go.Figure(go.Histogram(x=lengths, name="examples", marker_color="#4c78a8", nbinsx=30))
    over = sum(n > max_length for n in lengths) if max_length else 0
    title = f"Token length of {len(lengths)} examples" + (f" ({over} over max_length)" if over else "")
    style(fig, title, bargap=0.05, xaxis_title="tokens per example (chat template applied)",
          yaxis_title="examples", showlegend=False)
    if max_length:
        fig.add_vline(x=max_length, line_dash="dash", line_color="#e45756",
                      annotation_text=f"max_length {max_length}", annotation_position="top left")
    return fig


def loss_series(history: Iterable[dict]) -> dict:
    """Split a training history (`TrainResult.history` rows) into train and eval points."""
    out: dict = {"train_x": [], "train_y": [], "eval_x": [], "eval_y": []}
    for row in history:
        if "loss" in row:
            out["train_x"].append(row["step"])
            out["train_y"].append(row["loss"])
        if "eval_loss" in row:
            out["eval_x"].append(row["step"])
            out["eval_y"].append(row["eval_loss"])
    return out


def loss_figure(history: Iterable[dict] = (), total_steps: int | None = None) -> go.Figure:
    """Training loss per optimiser step (line) and held-out eval loss (points).

    The loss is the mean negative log-likelihood of the trained (response) tokens. With
    `total_steps` the x axis spans the whole run from the start, so a live chart shows how
    far the run has come.
    """
    s = loss_series(history)
    fig = go.Figure([
        go.Scatter(x=s["train_x"], y=s["train_y"], mode="lines+markers", name="train loss",
                   line=dict(color="#4c78a8"), marker=dict(size=4)),
        go.Scatter(x=s["eval_x"], y=s["eval_y"], mode="markers+lines", name="eval loss",
                   line=dict(color="#f58518", dash="dot"), marker=dict(size=9, symbol="diamond")),
    ])
    style(fig, "Loss (NLL per response token)", xaxis_title="optimiser step", yaxis_title="loss",
          yaxis_rangemode="tozero")
    if total_steps:
        fig.update_xaxes(range=[0.5, total_steps + 0.5], dtick=1 if total_steps <= 12 else None)
    return fig


def timeline_figure(points: Iterable[dict] = (), total_steps: int | None = None) -> go.Figure:
    """NLL at the timeline points (`lab.analysis.timeline`): the probes' reference answers (did the run
    learn what the probes ask?) and the retention set's answers and text (what did it cost?).

    >>> fig = timeline_figure([{"step": 0, "mean_probe_nll": 2.0, "retention": {"qa": 1.0, "text": 2.5}},
    ...                        {"step": 5, "mean_probe_nll": 1.5, "retention": {"qa": 1.2, "text": 2.6}}])
    >>> [(t.name, list(t.y)) for t in fig.data]
    [('probes', [2.0, 1.5]), ('retention Q&A', [1.0, 1.2]), ('retention text', [2.5, 2.6])]
    """
    points = list(points)
    series = [("probes", lambda p: p.get("mean_probe_nll"), "#4c78a8", "solid"),
              ("retention Q&A", lambda p: (p.get("retention") or {}).get("qa"), "#e45756", "dot"),
              ("retention text", lambda p: (p.get("retention") or {}).get("text"), "#b279a2", "dash")]
    traces = []
    for name, value, color, dash in series:
        pts = [(p["step"], value(p)) for p in points if value(p) is not None]
        traces.append(go.Scatter(x=[s for s, _ in pts], y=[v for _, v in pts], mode="lines+markers", name=name,
                                 line=dict(color=color, dash=dash), marker=dict(size=7)))
    fig = go.Figure(traces)
    style(fig, "Timeline NLL", xaxis_title="optimiser step", yaxis_title="NLL per token",
          yaxis_rangemode="tozero")
    if total_steps:
        fig.update_xaxes(range=[-0.5, total_steps + 0.5], dtick=1 if total_steps <= 12 else None)
    return fig

