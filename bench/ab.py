"""A/B test of an engine change: the lab's training job on two versions of the code, alternated.

Checks out `--ref` (a commit, branch or tag) into a temporary git worktree and runs the #3
bench job (`bench.train_vs_trl --child lab`) on it and on the working tree in turn, each in a
fresh process with its `PYTHONPATH` pointing at its tree, over `--rounds` rounds. Reports each
side's fastest run, the ratio, the held-out NLLs and the peak memory, and keeps every run in
`bench/results/ab.json`. Alternating gives both sides the machine's fast and slow spells alike.

    python -m bench.ab --ref HEAD~1 --rounds 3
    python -m bench.ab --ref HEAD~1 --fp32      # the fp32 path (CPUs without native bf16), forced
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


def run_side(tree: Path, fp32: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), HF_HUB_OFFLINE="1")
    if fp32:
        env["SFT_LAB_PRECISION"] = "fp32"  # honoured by versions from 2026-12-02 on
    done = subprocess.run([sys.executable, "-m", "bench.train_vs_trl", "--child", "lab"],
                          capture_output=True, text=True, cwd=tree, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{tree} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_average": os.getloadavg()[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", required=True, help="the version to compare the working tree with (A)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--fp32", action="store_true", help="force the fp32 path on both sides")
    args = p.parse_args()
    ref = subprocess.run(["git", "rev-parse", "--short", args.ref], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="sftlab-ab-") as tmp:
        old = Path(tmp) / "a"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), ref], cwd=REPO, check=True)
        try:
            runs = {"a": [], "b": []}
            for r in range(args.rounds):
                for side, tree in (("a", old), ("b", REPO)):
                    print(f"round {r + 1}/{args.rounds}: {side} ({ref if side == 'a' else 'working tree'}) ...",
                          file=sys.stderr, flush=True)
                    runs[side].append(run_side(tree, args.fp32))
                    print(f"  {runs[side][-1]['seconds']:.1f} s", file=sys.stderr, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO)
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "a": ref, "b": "working tree",
              "precision": "fp32 (forced)" if args.fp32 else "native", "speedup_b_over_a": best["a"]["seconds"] / best["b"]["seconds"],
              "best": {k: {f: v[f] for f in ("seconds", "held_out_nll", "peak_rss_gb")} for k, v in best.items()},
              "runs": runs}
    from lab.atomic import write_json
    write_json(REPO / "bench" / "results" / "ab.json", report)
    print(json.dumps({k: report[k] for k in ("a", "precision", "speedup_b_over_a", "best")}, indent=2))


if __name__ == "__main__":
    main()
