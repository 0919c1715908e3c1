"""A/B test of an engine change: the lab's training job on two versions of the code, alternated.

Checks out `--ref` (a commit, branch or tag) into a temporary git worktree and runs the speed
bench job (`bench.train_vs_trl --child lab`) on it and on the working tree in turn, each in a
fresh process with its `PYTHONPATH` pointing at its tree, over `--rounds` rounds. Reports each
side's fastest run, the ratio, the held-out NLLs and the peak memory, and keeps every run in
`bench/results/ab.json`. Alternating gives both sides the machine's fast and slow spells alike.

    python -m bench.ab --ref HEAD~1 --rounds 3
    python -m bench.ab --ref HEAD~1 --fp32      # the fp32 path (CPUs without native bf16), forced
    python -m bench.ab --ref HEAD~1 --starter support persona   # the notebooks' short runs instead

`--starter` trains the default model on a starter set as the notebooks do (`STARTER_JOBS`: 06's
recipe on `support`, the quickstart's batch on `persona`), a few steps, no eval: short examples
with the chat template's system prompt, where the speed job's long ones hide what a change to the
shared start does. Results go to `ab.json` (the speed job) or `ab_starters.json`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STARTER_JOBS = {"support": {"batch_size": 4, "max_steps": 8}, "persona": {"batch_size": 8, "max_steps": 5}}


def starter_job(name: str) -> dict:
    """Train a fresh default model on starter `name` (`STARTER_JOBS`); its seconds and losses."""
    from lab.data import starters
    from lab.config import TrainConfig
    from lab.models import load_model
    from lab.train import train

    model, tokenizer = load_model("default")
    cfg = TrainConfig(lr=2e-4, eval_split=0, **STARTER_JOBS[name])
    r = train(model, tokenizer, starters.load(name), cfg)
    return {"starter": name, "seconds": r.seconds, "tokens": r.train_tokens,
            "losses": [h["loss"] for h in r.history if "loss" in h]}


def run_side(tree: Path, fp32: bool, starter: str | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1")
    if fp32:
        env["SFT_LAB_PRECISION"] = "fp32"  # honoured by versions from 2026-12-02 on
    job = ([sys.executable, str(Path(__file__).resolve()), "--child", starter] if starter else
           [sys.executable, "-m", "bench.train_vs_trl", "--child", "lab"])  # lab from `tree` either way
    done = subprocess.run(job, capture_output=True, text=True, cwd=tree, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{tree} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_average": os.getloadavg()[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", help="the version to compare the working tree with (A)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--fp32", action="store_true", help="force the fp32 path on both sides")
    p.add_argument("--starter", nargs="+", choices=list(STARTER_JOBS),
                   help="train on these starter sets (the notebooks' short runs) instead of the speed job")
    p.add_argument("--child", choices=list(STARTER_JOBS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import warnings
        warnings.simplefilter("ignore")
        print(json.dumps(starter_job(args.child)))
        return
    if not args.ref:
        p.error("--ref is required: the commit to compare the working tree with")
    jobs = args.starter or [None]
    ref = subprocess.run(["git", "rev-parse", "--short", args.ref], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="sftlab-ab-") as tmp:
        old = Path(tmp) / "a"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), ref], cwd=REPO, check=True)
        try:
            runs = {job: {"a": [], "b": []} for job in jobs}
            for r in range(args.rounds):
                for job in jobs:
                    for side, tree in (("a", old), ("b", REPO)):
                        print(f"round {r + 1}/{args.rounds}: {job or 'speed job'}, {side} "
                              f"({ref if side == 'a' else 'working tree'}) ...", file=sys.stderr, flush=True)
                        runs[job][side].append(run_side(tree, args.fp32, job))
                        print(f"  {runs[job][side][-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO)
    fields = ("seconds", "losses") if args.starter else ("seconds", "held_out_nll", "peak_rss_gb")
    reports = {}
    for job, sides in runs.items():
        best = {k: min(v, key=lambda r: r["seconds"]) for k, v in sides.items()}
        reports[job or "speed job"] = {"speedup_b_over_a": best["a"]["seconds"] / best["b"]["seconds"],
                                    "best": {k: {f: v[f] for f in fields} for k, v in best.items()},
                                    "runs": sides}
    from bench.machine import machine

    report = {"date": time.strftime("%Y-%m-%d %H:%M"), **machine(), "a": ref, "b": "working tree",
              "precision": "fp32 (forced)" if args.fp32 else "native",
              **(reports["speed job"] if not args.starter else {"starters": reports})}
    from lab.atomic import write_json
    write_json(REPO / "bench" / "results" / ("ab_starters.json" if args.starter else "ab.json"), report)
    summary = {j: {k: r[k] for k in ("speedup_b_over_a", "best")} for j, r in reports.items()}
    print(json.dumps({"a": ref, "precision": report["precision"], **summary}, indent=2))


if __name__ == "__main__":
    main()
