"""Where a training step's time goes: the torch profiler on the lab's loop, grouped by kind.

The job is the speed bench job's (SmolLM2-135M, Self-Instruct seed tasks, batch 8, max length 256,
the lab's precision and micro-batches); a few warm-up steps, then `--steps` profiled ones. Each
operator's self CPU time is put in a group (matrix products, attention's softmax, norms,
SwiGLU, rotary, the optimiser, copies and casts, the rest) and the groups are printed as a
table and written to `bench/results/profile_step.json`.

    python -m bench.profile_step [--steps 4] [--fp32] [--shapes 25]

`--shapes N` also lists the N costliest (operator, input shapes) pairs: which tensors the
copies and element-wise passes run over.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict

GROUPS = (  # first match wins: (group, substrings of the operator's name)
    ("matrix products", ("mm", "matmul", "linear", "bmm", "addmm", "baddbmm", "mkldnn")),
    ("optimiser", ("fused_adamw", "adamw", "bitwise", "_foreach")),
    ("attention softmax", ("exp", "amax", "masked_fill", "triu", "logsumexp", "softmax")),
    ("norms", ("vector_norm", "rsqrt", "linalg_vecdot", "norm")),
    ("SwiGLU", ("silu",)),
    ("embedding", ("embedding", "index_add", "unique", "sparse")),
    ("element-wise", ("mul", "add", "sub", "div", "neg", "sum", "cat", "where", "pow", "square")),
    ("copies and casts", ("copy_", "to", "clone", "contiguous", "_to_copy", "empty", "zero", "fill")),
)


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other (overhead, autograd, views)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4, help="profiled steps (after 2 warm-up steps)")
    p.add_argument("--fp32", action="store_true", help="force the fp32 path (CPUs without native bf16)")
    p.add_argument("--shapes", type=int, default=0, help="also list the N costliest (operator, shapes)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from torch.profiler import ProfilerActivity, profile

    import lab.train as train_module
    from bench.train_vs_trl import BATCH, LR, MAX_LEN, seed_tasks
    from lab.atomic import write_json
    from lab.config import TrainConfig
    from lab.models import load_model
    from lab.train import Callback, train

    if args.fp32:
        train_module.autocast_dtype = lambda device: None
    model, tok = load_model("default")
    data = seed_tasks()[0]
    cfg = TrainConfig(max_steps=2 + args.steps, batch_size=BATCH, max_length=MAX_LEN, lr=LR, eval_split=0)

    class Profiled(Callback):
        """Starts the profiler after the warm-up steps, stops it at the end."""

        def __init__(self):
            self.prof = profile(activities=[ProfilerActivity.CPU], record_shapes=bool(args.shapes))
            self.started = None
            self.tokens = 0

        def on_step(self, info):
            if info.step == 2:
                self.prof.__enter__()
                self.started, self.tokens = time.perf_counter(), info.tokens

        def on_end(self, result):
            self.prof.__exit__(None, None, None)
            self.seconds = time.perf_counter() - self.started
            self.tokens = result.train_tokens - self.tokens

    prof = Profiled()
    train(model, tok, data, cfg, callbacks=[prof])
    groups: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = defaultdict(float)
    for e in prof.prof.key_averages():
        if e.key.startswith("ProfilerStep") or e.self_cpu_time_total <= 0:
            continue
        groups[group_of(e.key)] += e.self_cpu_time_total / 1e6
        ops[e.key] += e.self_cpu_time_total / 1e6
    total = sum(groups.values())
    rows = sorted(groups.items(), key=lambda kv: -kv[1])
    print(f"{args.steps} steps, {prof.tokens} tokens, {prof.seconds:.1f} s wall "
          f"({'fp32' if args.fp32 else 'native precision'}); self CPU time by group:")
    for g, s in rows:
        print(f"  {g:36s} {s:7.2f} s  {100 * s / total:5.1f}%")
    print("top operators:")
    for name, s in sorted(ops.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {name:44s} {s:7.2f} s  {100 * s / total:5.1f}%")
    if args.shapes:
        print("costliest (operator, input shapes):")
        by_shape = sorted(prof.prof.key_averages(group_by_input_shape=True),
                          key=lambda e: -e.self_cpu_time_total)
        for e in [e for e in by_shape if not e.key.startswith("ProfilerStep")][:args.shapes]:
            print(f"  {e.self_cpu_time_total / 1e6:7.2f} s  {e.count:6d}x  {e.key:28s} {str(e.input_shapes)[:90]}")
    from bench.train_vs_trl import RESULTS
    write_json(RESULTS / f"profile_step{'_fp32' if args.fp32 else ''}.json", {
        "date": time.strftime("%Y-%m-%d %H:%M"), "steps": args.steps, "tokens": prof.tokens,
        "wall_seconds": prof.seconds, "load_average": os.getloadavg()[0], "threads": torch.get_num_threads(),
        "groups": {g: {"seconds": round(s, 3), "share": round(s / total, 4)} for g, s in rows},
        "top_ops": {n: round(s, 3) for n, s in sorted(ops.items(), key=lambda kv: -kv[1])[:30]}})


if __name__ == "__main__":
    main()
