"""What "Which examples?" costs: one reply explained against 100 training examples, default model.

The first 100 Self-Instruct seed tasks (tests/data, a copy of ../shared/data) are the training set, cut at the
trainer's default max_length; the reply is the model's greedy answer to the 101st task. The
time of `lab.analysis.influence.influence` (the query gradient and one gradient per example) is set
beside a plain scoring pass over the same examples (`lab.score.score`, forward only): no
gradient method can beat a forward pass over every example, so the ratio says how much the
gradients add, on any machine. The target is 60 s on a 2-core laptop. The machine's load is
recorded before and after each job, with its fp32 matmul peak (`bench.train_vs_trl.matmul_peak`):
on a shared machine the absolute seconds are noisy, and
when other processes keep the cores busy, torch's two threads wait on each other at every
operation (`--threads 2 1` measures both). Written to `bench/results/influence.json`.

    python -m bench.influence [--examples 100] [--blocks 2] [--threads N ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED_TASKS = HERE.parent / "tests" / "data" / "self_instruct_seed_tasks.jsonl"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=100)
    p.add_argument("--blocks", type=int, default=None, help="parameter slice (default: lab.analysis.influence.BLOCKS)")
    p.add_argument("--threads", type=int, nargs="*", default=None,
                   help="torch thread counts to measure, one job each (default: the lab's, one per core)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import warnings
    warnings.simplefilter("ignore")  # truncation notes

    import torch

    from bench.train_vs_trl import matmul_peak
    from lab.analysis import influence
    from lab.config import TrainConfig
    from lab.data.dataio import read_dataset
    from lab.engine.device import autocast_dtype, set_threads
    from lab.generate import GenConfig, generate
    from lab.masks import encode
    from lab.models import load_model
    from lab.score import score

    blocks = args.blocks or influence.BLOCKS
    tasks = read_dataset(SEED_TASKS)
    data, question = tasks[:args.examples], tasks[args.examples].prompt_only()
    max_length = TrainConfig().max_length
    model, tok = load_model("default")
    reply = generate(model, tok, [question], GenConfig(max_new_tokens=64))[0]
    jobs = []
    for threads in args.threads or [set_threads()]:
        peak_before = matmul_peak()["fp32"]
        torch.set_num_threads(threads)
        load_before = os.getloadavg()
        t = time.perf_counter()
        score(model, tok, data, max_length)
        score_s = time.perf_counter() - t
        t = time.perf_counter()
        result = influence.influence(model, tok, data, question, reply, blocks=blocks, max_length=max_length)
        influence_s = time.perf_counter() - t
        jobs.append({"threads": threads, "influence_seconds": influence_s, "score_seconds": score_s,
                     "ratio_to_scoring": influence_s / score_s, "load_average_before": load_before,
                     "load_average_after": os.getloadavg(),
                     "matmul_fp32_gflops": {"before": peak_before, "after": matmul_peak()["fp32"]},
                     "top_supporting": [(e["index"], e["score"]) for e in result["supporting"]]})
        print(json.dumps(jobs[-1]), file=sys.stderr, flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "job": f"one reply against {len(data)} Self-Instruct seed tasks",
        "model": "default", "examples": len(data), "blocks": blocks, "method": result["method"],
        "tokens": sum(len(encode(c, tok, max_length).input_ids) for c in data), "max_length": max_length,
        "target_seconds": 60, "cores": len(os.sched_getaffinity(0)),
        "precision": str(autocast_dtype(next(model.parameters()).device) or "fp32"), "jobs": jobs}
    from lab.atomic import write_json
    write_json(HERE / "results" / "influence.json", report)
    print(json.dumps(report, indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
