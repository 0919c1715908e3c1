"""What the timeline and the forgetting meter cost: the quickstart's flow with and without them.

The flow a participant runs in the quickstart: train from the Train tab (the `persona` starter,
the Train tab's default settings, its probes), then compare the probes in the Compare tab
(base and tuned replies, greedy, the tab's length). It runs once with the Train tab's default
timeline (points by budget, the forgetting meter on) and once without, each in a fresh
process; the wall time of train + compare is what counts (the model load is not). The jobs
alternate over `--rounds` rounds and each job's fastest run counts.

The run with the timeline is timed in three settings, each in a new process with a cache
folder of the round's own: "first", the first run after set-up (`sft-lab fetch-model` has
filled `lab.analysis.timeline.BaseCache` for every starter's probes: step 0 and the base
model's meter answers are on disk; set-up's own time is reported as `setup_seconds`);
"again", a later run (the same cache); "cold", a run with an empty cache (no set-up: step 0
and the answers are computed, and count against the budget). Written to
`bench/results/timeline_cost.json` with the commit and the CPU kind.

    python -m bench.timeline_cost [--rounds 2]
    python -m bench.timeline_cost --parts   # one point's parts on the default model, timed apart
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOBS = ("without", "first", "again", "cold")


def job(timeline: bool) -> dict:
    import tempfile

    from lab.data import starters
    from lab.config import TrainConfig, eval_every_for
    from lab.generate import REPLY_TOKENS, GenConfig
    from lab.session import Session
    from lab.analysis.timeline import TimelineConfig
    from lab.train import split_eval

    data, probes = starters.load("persona"), starters.probes("persona")
    cfg = TrainConfig()  # the Train tab's defaults, with its evals spread over the run
    cfg.eval_every = eval_every_for(len(split_eval(data, cfg.eval_split, cfg.seed)[0]), cfg, 4)
    with tempfile.TemporaryDirectory() as tmp:
        session = Session("default", runs_dir=tmp)
        t = time.perf_counter()
        run = session.train(data, cfg, probes=probes, timeline=TimelineConfig() if timeline else None)
        trained = time.perf_counter() - t
        session.compare(probes, GenConfig(max_new_tokens=REPLY_TOKENS))  # the Compare tab's defaults
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "train_call_seconds": trained, "compare_seconds": seconds - trained,
            "steps": run.result.steps, "train_seconds": run.result.seconds,
            "points": [p["step"] for p in run.timeline],
            "timeline_seconds": sum(p["seconds"] for p in run.timeline),
            "timeline_counted": sum(p.get("counted", p["seconds"]) for p in run.timeline),
            "step0_cached": bool(run.timeline and run.timeline[0].get("cached"))}


def parts() -> dict:
    """Seconds of each part of a timeline point on the default model as loaded (fp32 weights,
    as at step 0 and the last point): a first point (every probe's full reply, the whole
    meter, the base model's answers) and a point between (short replies, a third of the
    meter), as the timeline records them."""
    from lab.data import starters
    from lab.models import load_model
    from lab.analysis.timeline import Timeline, TimelineConfig

    model, tok = load_model("default")
    tl = Timeline(model, tok, starters.probes("persona"), TimelineConfig())
    first = tl.record(0, end=True)
    between = tl.record(1)
    return {"first": first["parts"], "between": between["parts"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", choices=("with", "without", "setup"))
    p.add_argument("--parts", action="store_true", help="time one point's parts instead")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.parts:
        print(json.dumps(parts(), indent=2))
        return
    if args.child:
        import warnings
        warnings.simplefilter("ignore")
        if args.child == "setup":
            from lab.cli import _prepare_timeline
            t = time.perf_counter()
            _prepare_timeline("default")
            print(json.dumps({"setup_seconds": time.perf_counter() - t}))
        else:
            print(json.dumps(job(args.child == "with")))
        return
    import tempfile

    from lab.models import cache_dir

    # a job sharing the 2 cores with another process is 3-30x slower when torch's threads spin
    # (bench/README.md); passive waiting keeps the jobs' ratio readable on a busy machine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    runs = {name: [] for name in JOBS}
    setup = []

    def child(kind: str, env: dict) -> dict:
        done = subprocess.run([sys.executable, "-m", "bench.timeline_cost", "--child", kind],
                              capture_output=True, text=True, cwd=HERE.parent, env=env)
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])

    for r in range(args.rounds):
        # cache folders of the round's own (the models linked in): "first" and "again" after
        # set-up filled one, "cold" with the other empty
        with tempfile.TemporaryDirectory() as ready, tempfile.TemporaryDirectory() as empty:
            for tmp in (ready, empty):
                (Path(tmp) / "models").symlink_to(cache_dir() / "models")
            setup.append(child("setup", {**os.environ, "SFT_LAB_CACHE": ready}))
            for name in JOBS:
                print(f"round {r + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
                env = {**os.environ, **({"SFT_LAB_CACHE": ready} if name in ("first", "again") else
                                        {"SFT_LAB_CACHE": empty} if name == "cold" else {})}
                runs[name].append({**child("without" if name == "without" else "with", env),
                                   "load_average": os.getloadavg()[0]})
                print(json.dumps(runs[name][-1]), file=sys.stderr, flush=True)
    from bench.machine import machine
    from bench.train_vs_trl import RESULTS
    from lab.atomic import write_json

    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), **machine(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "flow": "quickstart: train (persona, Train tab defaults) then compare the probes (Compare tab defaults)",
              "timeline": "the Train tab's default: points by budget (a quarter of the training time), meter on",
              **{f"cost_ratio_{k}": best[k]["seconds"] / best["without"]["seconds"] for k in JOBS[1:]},
              "setup_seconds": [s["setup_seconds"] for s in setup], "best": best, "runs": runs}
    write_json(RESULTS / "timeline_cost.json", report)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
