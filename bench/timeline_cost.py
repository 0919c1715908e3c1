"""What the timeline and the forgetting meter cost: the quickstart's run with and without them.

The run the quickstart makes from the Train tab (the `persona` starter, the Train tab's default
settings, its held-out probes) is trained twice per round, once with the widgets' default
timeline (6 points, the forgetting meter on) and once without, each in a fresh process; the
jobs alternate over `--rounds` rounds and each job's fastest run counts. The result is the
ratio of the two wall times, the whole `Session.train` call included (step 0, the base model's
answers to the retention questions and the last point's check). Written to
`bench/results/timeline_cost.json`.

    python -m bench.timeline_cost [--rounds 2]
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


def job(timeline: bool) -> dict:
    import tempfile

    from lab import starters
    from lab.config import TrainConfig, eval_every_for
    from lab.session import Session
    from lab.timeline import TimelineConfig
    from lab.train import split_eval

    data, probes = starters.load("persona"), starters.probes("persona")
    cfg = TrainConfig()  # the Train tab's defaults, with its evals spread over the run
    cfg.eval_every = eval_every_for(len(split_eval(data, cfg.eval_split, cfg.seed)[0]), cfg, 4)
    with tempfile.TemporaryDirectory() as tmp:
        session = Session("default", runs_dir=tmp)
        t = time.perf_counter()
        run = session.train(data, cfg, probes=probes, timeline=TimelineConfig() if timeline else None)
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "steps": run.result.steps, "train_seconds": run.result.seconds,
            "points": len(run.timeline), "timeline_seconds": sum(p["seconds"] for p in run.timeline)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", choices=("with", "without"))
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        import warnings
        warnings.simplefilter("ignore")
        print(json.dumps(job(args.child == "with")))
        return
    runs = {"with": [], "without": []}
    for r in range(args.rounds):
        for name in runs:
            print(f"round {r + 1}/{args.rounds}: {name} timeline ...", file=sys.stderr, flush=True)
            done = subprocess.run([sys.executable, "-m", "bench.timeline_cost", "--child", name],
                                  capture_output=True, text=True, cwd=HERE.parent)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            runs[name].append({**json.loads(done.stdout.strip().splitlines()[-1]),
                               "load_average": os.getloadavg()[0]})
            print(json.dumps(runs[name][-1]), file=sys.stderr, flush=True)
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "job": "quickstart run (persona, Train tab defaults)",
              "timeline": "6 points, forgetting meter on (the widgets' default)",
              "cost_ratio": best["with"]["seconds"] / best["without"]["seconds"], "best": best, "runs": runs}
    from bench.train_vs_trl import RESULTS
    from lab.atomic import write_json
    write_json(RESULTS / "timeline_cost.json", report)
    print(json.dumps({k: report[k] for k in ("cost_ratio", "best")}, indent=2))


if __name__ == "__main__":
    main()
