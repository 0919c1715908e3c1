// A plotly figure drawn by plotly.js. The library comes once per page, from the kernel's one
// PlotlyLibrary widget (widgets/chart.py), not with every chart: plotly's own FigureWidget
// sends its 5 MB bundle with each figure, which made a Lab with five charts take 15-20 s to
// appear on a 2-core laptop.

function plotlyLoaded(timeoutMs = 60000) {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (globalThis.__sftlabPlotly) resolve(globalThis.__sftlabPlotly);
      else if (Date.now() - start > timeoutMs) reject(new Error("plotly.js did not load in 60 s"));
      else setTimeout(poll, 50);
    };
    poll();
  });
}

export default {
  async render({ model, el }) {
    el.classList.add("sftlab-chart");
    let Plotly;
    try {
      Plotly = await plotlyLoaded();
    } catch (e) {
      el.textContent = `(chart unavailable: ${e.message}; run the cell again)`;
      return undefined;
    }
    const draw = () => {
      const fig = model.get("figure") || {};
      Plotly.react(el, fig.data || [], fig.layout || {}, { responsive: true, displaylogo: false });
    };
    draw();
    model.on("change:figure", draw);
    return () => {
      model.off("change:figure", draw);
      Plotly.purge(el);
    };
  },
};
