"""Run the workshop notebooks top to bottom in full mode (the default model), timing each.

    python -m bench.notebooks_full                  # every notebook, one after another
    python -m bench.notebooks_full --only 02 04     # just these (matched by name prefix)
    python -m bench.notebooks_full --seeds 0 1 2    # each notebook once per seed
    python -m bench.notebooks_full --reference      # keep the executed notebooks (seed 0) in
                                                    # notebooks/reference/, for teachers

This is the workshop as a teacher runs it: each notebook should finish in 10 minutes on a
2-core laptop CPU, and every `expect(...)` beside a sentence of the text must hold (a claim
that fails fails the notebook), for every seed (`SFT_LAB_SEED`). The notebooks run in a
temporary copy of `notebooks/`, so their run folders (with saved models, 0.5 GB each) never
land in the repository. Results go to `bench/results/notebooks_full.json` (merged with earlier
results when `--only` is given; a row that does not record its commit and CPU kind is dropped,
since it cannot be compared with anything).

Each row keeps the "checked: ..." lines of its run, with the numbers each claim was checked
on (the seed-0 run's are also in its reference copy; the other seeds' only here), and records
what it ran on: the commit (and the tracked files under `lab/`, `widgets/`,
`notebooks/` and `bench/` that differed from it, if any), the CPU kind (`avx512_bf16` flags counted in
`/proc/cpuinfo`: 0 means AVX2 only, where the lab trains in fp32), the CPU model, and when.

The kernels run with `OMP_WAIT_POLICY=PASSIVE` unless the variable is already set: on a machine
shared with other busy processes, OpenMP threads that spin while waiting for each other make
torch up to 30 times slower (measured here: 4 replies of 24 tokens took 102 s with spinning
threads, 3.9 s with passive ones); on an idle machine passive waiting costs little. The
load average before and after each notebook is recorded, since times on a shared machine vary.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.machine import machine
from lab.atomic import write_json

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
RESULTS = REPO / "bench" / "results" / "notebooks_full.json"
BUDGET_S = 600      # a notebook should run in at most this many seconds
CELL_TIMEOUT = 1800  # per cell; generous, so a slow machine reports a time instead of a timeout


def _cell_seconds(cell) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _without_widget_views(nb):
    """The executed notebook without its live widgets' views (megabytes of state that only a
    running kernel can use): each widget output keeps its one-line text form."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            out.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
    nb.metadata.pop("widgets", None)
    return nb


def run_notebook(path: Path, workdir: Path, executed: Path | None, seed: int = 0) -> dict:
    """Execute one notebook in `workdir` with `SFT_LAB_SEED=seed`; return its timing, outcome
    and the claims it checked."""
    import nbclient
    import nbformat

    os.environ["SFT_LAB_SEED"] = str(seed)
    nb = nbformat.read(workdir / path.name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as err:  # a failing notebook is a result to report, not a crash
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    seconds = time.perf_counter() - t0
    cells = [(i, _cell_seconds(c)) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    slowest = sorted(((s, i) for i, s in cells if s is not None), reverse=True)[:3]
    if executed is not None and (error is None or executed != NOTEBOOKS / "reference"):  # no failed references
        executed.mkdir(parents=True, exist_ok=True)
        nbformat.write(_without_widget_views(nb), executed / path.name)
    claims = [line for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
              if out.get("output_type") == "stream" for line in out.get("text", "").splitlines()
              if line.startswith("checked: ")]
    return {"notebook": path.name, "seed": seed, "seconds": round(seconds, 1), "ok": error is None,
            "claims_checked": len(claims), "checked": [c[len("checked: "):] for c in claims],
            "within_budget": error is None and seconds <= BUDGET_S, "error": error,
            "slowest_cells": [{"cell": i, "seconds": round(s, 1)} for s, i in slowest],
            "load_average_at_start": round(load0, 2), "load_average_at_end": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None,
                        help="notebook name prefixes to run, e.g. 01 03 (default: all)")
    parser.add_argument("--executed", type=Path, default=None,
                        help="folder to write the executed notebooks (with outputs) into")
    parser.add_argument("--reference", action="store_true",
                        help="write the executed notebooks of the first seed to notebooks/reference/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="run every notebook once per seed (SFT_LAB_SEED)")
    args = parser.parse_args(argv)
    if args.reference:
        args.executed = NOTEBOOKS / "reference"

    os.environ.pop("SFT_LAB_FAST", None)       # full mode: the default model, epochs not steps
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see the module docstring
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.only:
        paths = [p for p in paths if any(p.name.startswith(o) for o in args.only)]
    if not paths:
        print("no notebook matched", file=sys.stderr)
        return 2

    rows = []
    with tempfile.TemporaryDirectory(prefix="sftlab-notebooks-") as tmp:
        for seed in args.seeds:
            for path in paths:
                workdir = Path(tmp) / path.stem        # a fresh copy per notebook: no shared runs/
                shutil.copytree(NOTEBOOKS, workdir, ignore=shutil.ignore_patterns(
                    "runs", "reference", ".ipynb_checkpoints", "__pycache__"))
                print(f"running {path.name} (seed {seed}) ...", flush=True)
                where, started = machine(), time.strftime("%Y-%m-%d %H:%M")
                row = run_notebook(path, workdir, args.executed if seed == args.seeds[0] else None, seed)
                row.update(where, date=started)
                rows.append(row)
                print(f"  {row['seconds']:.0f} s, {row['claims_checked']} claims checked  "
                      f"{'ok' if row['ok'] else 'FAILED: ' + str(row['error'])}", flush=True)
                shutil.rmtree(workdir, ignore_errors=True)

    key = lambda r: f"{r['notebook']} seed {r.get('seed', 0)}"  # noqa: E731
    previous = {}
    if args.only and RESULTS.is_file():
        try:
            previous = {key(r): r for r in json.loads(RESULTS.read_text()).get("notebooks", [])
                        if r.get("commit") and "cpu_avx512_bf16" in r}
        except (OSError, json.JSONDecodeError, AttributeError):
            previous = {}
    merged = {**previous, **{key(r): r for r in rows}}
    write_json(RESULTS, {"mode": "full (default model)", "budget_s": BUDGET_S,
                         "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                         "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                         "notebooks": [merged[k] for k in sorted(merged)]})

    print(f"\n{'notebook':40s} {'seed':>4s} {'seconds':>8s} {'claims':>6s}  {'load':>9s}  result"
          f"  (commit {rows[0]['commit']}, {rows[0]['cpu_kind']})")
    for r in rows:
        verdict = "ok" if r["within_budget"] else ("over budget" if r["ok"] else "FAILED")
        load = f"{r['load_average_at_start']:.1f}-{r['load_average_at_end']:.1f}"
        print(f"{r['notebook']:40s} {r['seed']:4d} {r['seconds']:8.0f} {r['claims_checked']:6d}  {load:>9s}  {verdict}")
    print(f"\nbudget {BUDGET_S} s per notebook; results in {RESULTS.relative_to(REPO)}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
