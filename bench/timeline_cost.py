"""What the timeline and the forgetting meter cost: the quickstart's run with and without them.

The run the quickstart makes from the Train tab (the `persona` starter, the Train tab's default
settings, its held-out probes) is trained twice per round, once with the widgets' default
timeline (6 points, the forgetting meter on) and once without, each in a fresh process; the
jobs alternate over `--rounds` rounds and each job's fastest run counts. The result is the
ratio of the two wall times, the whole `Session.train` call included (step 0, the base model's
answers to the retention questions and the last point's check). The run with the timeline is
timed twice per round, each in a new process: "first", with an empty cache, computes step 0
and the base model's answers and keeps them (`lab.analysis.timeline.BaseCache`); "again" finds them, as
every later run from the same base model with the same probes does. Written to
`bench/results/timeline_cost.json`.

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


def job(timeline: bool) -> dict:
    import tempfile

    from lab.data import starters
    from lab.config import TrainConfig, eval_every_for
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
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "steps": run.result.steps, "train_seconds": run.result.seconds,
            "points": len(run.timeline), "timeline_seconds": sum(p["seconds"] for p in run.timeline)}


def parts(repeats: int = 2) -> dict:
    """Seconds of each part of one timeline point (and of the meter's answers) on the default
    model as loaded (fp32 weights, as at step 0 and the last point), best of `repeats`."""
    from lab.data import starters
    from lab.analysis.forgetting import Meter
    from lab.masks import encode
    from lab.models import load_model
    from lab.score import score_encoded
    from lab.analysis.timeline import Timeline, TimelineConfig

    model, tok = load_model("default")
    cfg = TimelineConfig()
    tl = Timeline(model, tok, starters.probes("persona"), cfg, meter=Meter(tok))
    meter, pad = tl.meter, tok.pad_token_id
    tasks = {"probe_replies": lambda: tl.record(0),
             "probe_nll": lambda: score_encoded(model, [e for _, e in tl._scored], pad),
             "meter_nll_qa": lambda: score_encoded(model, meter._qa, pad),
             "meter_nll_text": lambda: score_encoded(model, meter._text, pad),
             "meter_answers": lambda: meter.answers(model)}
    tl.meter = None  # "probe_replies" times a point without the meter: replies + probe NLL
    out = {}
    for name, task in tasks.items():
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            task()
            times.append(time.perf_counter() - t)
        out[name] = min(times)
    out["probe_replies"] -= out["probe_nll"]
    out["tokens"] = {"probe_nll": sum(len(e.input_ids) for _, e in tl._scored),
                     "meter_qa": sum(len(e.input_ids) for e in meter._qa),
                     "meter_text": sum(len(e.input_ids) for e in meter._text)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", choices=("with", "without"))
    p.add_argument("--parts", action="store_true", help="time one point's parts instead")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.parts:
        print(json.dumps(parts(), indent=2))
        return
    if args.child:
        import warnings
        warnings.simplefilter("ignore")
        print(json.dumps(job(args.child == "with")))
        return
    import tempfile

    from lab.models import cache_dir

    runs = {"without": [], "first": [], "again": []}
    for r in range(args.rounds):
        # a cache folder of its own per round (the models linked in): "first" computes step 0
        # and the base answers and keeps them, "again" (a new process) finds them
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "models").symlink_to(cache_dir() / "models")
            for name in runs:
                print(f"round {r + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
                env = {**os.environ, **({"SFT_LAB_CACHE": tmp} if name != "without" else {})}
                done = subprocess.run([sys.executable, "-m", "bench.timeline_cost", "--child",
                                       "without" if name == "without" else "with"],
                                      capture_output=True, text=True, cwd=HERE.parent, env=env)
                if done.returncode:
                    raise SystemExit(done.stderr[-3000:])
                runs[name].append({**json.loads(done.stdout.strip().splitlines()[-1]),
                                   "load_average": os.getloadavg()[0]})
                print(json.dumps(runs[name][-1]), file=sys.stderr, flush=True)
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "job": "quickstart run (persona, Train tab defaults)",
              "timeline": "6 points, forgetting meter on (the widgets' default)",
              "cost_ratio_first": best["first"]["seconds"] / best["without"]["seconds"],
              "cost_ratio_again": best["again"]["seconds"] / best["without"]["seconds"],
              "best": best, "runs": runs}
    from bench.train_vs_trl import RESULTS
    from lab.atomic import write_json
    write_json(RESULTS / "timeline_cost.json", report)
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
