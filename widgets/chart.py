"""A plotly figure as a light widget: `Chart(fig)`, redrawn with `chart.show(new_fig)`.

plotly's `go.FigureWidget` carries plotly.js (5 MB) in every figure's state: a Lab (five
charts) sent 25 MB to the browser, and Run All of the quickstart's Lab cell took 19 s in
JupyterLab on a 2-core AVX2 machine, 7 s with these (side by side, headless Chromium). Here the
library travels once per kernel, as the module of one `PlotlyLibrary` widget that every Chart
refers to; a Chart holds only its figure's JSON, drawn with `Plotly.react`.
"""
from __future__ import annotations

import json
import pathlib

import anywidget
import plotly
import plotly.graph_objects as go
import traitlets as t
from ipywidgets import widget_serialization

from ._common import STATIC

PLOTLY_JS = pathlib.Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class PlotlyLibrary(anywidget.AnyWidget):
    """plotly.js as a widget's module: the browser runs it once when the widget's model is
    made, which leaves the library where every Chart's module finds it."""

    _esm = t.Unicode().tag(sync=True)

    def __init__(self):
        # plotly.min.js is a UMD bundle: given a CommonJS `module`, it hands the library there
        # (some versions set window.Plotly as well, or instead).
        super().__init__(_esm="const module = { exports: {} };\n" + PLOTLY_JS.read_text(encoding="utf-8")
                         + "\nglobalThis.__sftlabPlotly = module.exports.react ? module.exports : globalThis.Plotly;"
                         "\nglobalThis.__sftlabPlotlyLoads = (globalThis.__sftlabPlotlyLoads || 0) + 1;"
                         "\nexport default {};\n")


_library: PlotlyLibrary | None = None


def library() -> PlotlyLibrary:
    """The kernel's one PlotlyLibrary (made again if it was closed)."""
    global _library
    if _library is None or _library.comm is None:
        _library = PlotlyLibrary()
    return _library


class Chart(anywidget.AnyWidget):
    """One plotly figure in the browser. `fig` is the `go.Figure` shown (read its `data` and
    `layout` as a figure's); `show(new)` replaces it and the browser redraws."""

    _esm = (STATIC / "chart.js").read_text()
    figure = t.Dict(help="the figure shown, as plotly JSON (data, layout)").tag(sync=True)
    _plotly = t.Instance(PlotlyLibrary).tag(sync=True, **widget_serialization)

    def __init__(self, fig: go.Figure | None = None, **kwargs):
        super().__init__(_plotly=library(), **kwargs)
        self.show(fig if fig is not None else go.Figure())

    def show(self, fig: go.Figure) -> None:
        """Draw `fig` in place of the figure shown (plotly's encoder: arrays as lists, NaN as null)."""
        self.fig = fig
        self.figure = json.loads(fig.to_json())

    @property
    def data(self):
        return self.fig.data

    @property
    def layout(self):
        return self.fig.layout
