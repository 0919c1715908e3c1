"""Training speed side by side: the lab's loop against TRL's SFTTrainer on the same job.

Job (the speed job the README quotes): SmolLM2-135M-Instruct, the first 64 Self-Instruct seed tasks (instruction +
input as prompt, output as response), 1 epoch, batch 8, max length 256, lr 5e-5 (linear, no
warmup), completion-only loss. Held-out NLL on the next 16 seed tasks, scored by one function.

Each trainer runs in its own process (fresh memory peak, same threads), one after another, in
one invocation, over `--rounds` rounds (3 by default), the order reversed every other round.
TRL runs in the precision the lab trains in on this CPU (bf16 where native, fp32 where bf16 is
emulated). The figure is the median over rounds of TRL's time over the lab's in the same round,
with the spread; every run is kept, with the machine's matmul peak around it. Results go to
`bench/results/train_vs_trl.KIND-YYYYMMDD.json` with the commit and the CPU kind.

    python -m bench.train_vs_trl                 # lab and TRL in the lab's precision, 3 rounds
    python -m bench.train_vs_trl --jobs lab trl-fp32 trl-bf16 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.machine import RESULTS

HERE = Path(__file__).resolve().parent
SEED = HERE.parent / "tests" / "data" / "self_instruct_seed_tasks.jsonl"  # in every clone and worktree
N_TRAIN, N_EVAL = 64, 16
EPOCHS, BATCH, MAX_LEN, LR = 1, 8, 256, 5e-5


def seed_tasks():
    from lab.data.dataio import read_dataset

    tasks = read_dataset(os.environ.get("SFT_LAB_SEED_TASKS", SEED))
    return tasks[:N_TRAIN], tasks[N_TRAIN:N_TRAIN + N_EVAL]


def matmul_peak() -> dict:
    """This machine's matmul throughput (GFLOP/s) in fp32 and bf16: the best of several timed
    products of large square matrices (the best, since a peak is what the hardware can do)."""
    import torch

    from lab.engine.device import cpu_has_native_bf16, set_threads

    set_threads()
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        # emulated bf16 (no AVX512-BF16/AMX) is slow: keep its product short
        n = 2048 if dtype == torch.float32 or cpu_has_native_bf16() else 512
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        best, start = 0.0, time.perf_counter()
        while time.perf_counter() - start < 3.0:
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
        out[name] = best
    return out


def max_length() -> int:
    """The job's max length: 256, or `--max-length` (passed to the children in the environment)."""
    return int(os.environ.get("SFT_LAB_BENCH_MAX_LENGTH", MAX_LEN))


def held_out_nll(model, tok, eval_set) -> float:
    from lab.score import score

    return score(model, tok, eval_set, max_length=max_length()).mean_nll


def job_lab() -> dict:
    from lab.models import load_model
    from lab.train import TrainConfig, train

    train_set, eval_set = seed_tasks()
    model, tok = load_model("default")
    cfg = TrainConfig(epochs=EPOCHS, batch_size=BATCH, max_length=max_length(), lr=LR, schedule="linear",
                      warmup_ratio=0.0, max_grad_norm=1.0, seed=0)
    result = train(model, tok, train_set, cfg)
    return {"seconds": result.seconds, "tokens": result.train_tokens, "steps": result.steps,
            "final_loss": result.final_loss, "held_out_nll": held_out_nll(model, tok, eval_set)}


def job_trl(bf16: bool) -> dict:
    """TRL's SFTTrainer on the job. `SFT_LAB_BENCH_MAX_STEPS` caps the steps (for the slow
    emulated-bf16 setting); the parent then scales the time to the full job, labelled as such."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from lab.models import default_model_dir, prepare_default

    prepare_default()
    train_set, eval_set = seed_tasks()
    model = AutoModelForCausalLM.from_pretrained(default_model_dir(), dtype="float32")
    tok = AutoTokenizer.from_pretrained(default_model_dir())
    rows = [{"prompt": [{"role": "user", "content": c.prompt}],
             "completion": [{"role": "assistant", "content": c.response}]} for c in train_set]
    cfg = SFTConfig(output_dir=str(RESULTS / "trl-tmp"), num_train_epochs=EPOCHS,
                    per_device_train_batch_size=BATCH, max_length=max_length(), learning_rate=LR,
                    lr_scheduler_type="linear", warmup_steps=0, completion_only_loss=True,
                    bf16=bf16, use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
                    seed=0, max_grad_norm=1.0, weight_decay=0.0, disable_tqdm=True,
                    max_steps=int(os.environ.get("SFT_LAB_BENCH_MAX_STEPS", -1)))

    trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows),
                         processing_class=tok)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])  # real tokens, as the lab counts
    t = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - t
    model.eval()
    full_steps = -(-len(rows) // BATCH) * EPOCHS
    if out.global_step < full_steps:  # capped: scale time and tokens to the whole job
        seconds, tokens = seconds * full_steps / out.global_step, tokens
    return {"seconds": seconds, "tokens": tokens, "steps": out.global_step,
            "extrapolated_from_steps": out.global_step if out.global_step < full_steps else None,
            "final_loss": out.training_loss, "held_out_nll": held_out_nll(model, tok, eval_set)}


JOBS = {"lab": job_lab, "trl-fp32": lambda: job_trl(False), "trl-bf16": lambda: job_trl(True)}


def run_child(job: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.train_vs_trl", "--child", job],
                          capture_output=True, text=True, cwd=HERE.parent)
    if done.returncode != 0:
        raise SystemExit(f"{job} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_run(job: str, n_params: int) -> dict:
    """One child run of `job`, with the machine's matmul peak measured right before and after it
    (the machine's speed drifts; the job is compared with the higher of the two)."""
    before = matmul_peak()
    r = run_child(job)
    after = matmul_peak()
    peak = {k: max(before[k], after[k]) for k in before}
    r["matmul_peak_gflops"] = {"before": before, "after": after}
    r["tokens_per_second"] = r["tokens"] / r["seconds"]
    r["gflops"] = 6 * n_params * r["tokens"] / r["seconds"] / 1e9  # conventional 6·N·D
    r["fraction_of_fp32_peak"] = r["gflops"] / peak["fp32"]
    r["fraction_of_bf16_peak"] = r["gflops"] / peak["bf16"]
    r["date"] = time.strftime("%Y-%m-%d %H:%M")
    return r


def trl_job() -> str:
    """TRL in the precision the lab trains in on this CPU: bf16 where bf16 products are native,
    fp32 where they are emulated (TRL's bf16 would take hours there and compare nothing)."""
    from lab.engine.device import cpu_has_native_bf16

    return "trl-bf16" if cpu_has_native_bf16() else "trl-fp32"


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "each": values}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", nargs="+", choices=list(JOBS),
                   help="default: the lab and TRL in the lab's precision on this CPU")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of the jobs in turn, the order reversed every other round")
    p.add_argument("--max-length", type=int, default=MAX_LEN,
                   help="the job's max length in tokens (256; 512 checks memory at longer rows)")
    p.add_argument("--child", choices=list(JOBS))
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        import warnings
        warnings.simplefilter("ignore")
        out = JOBS[args.child]()
        out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        print(json.dumps(out))
        return
    os.environ["SFT_LAB_BENCH_MAX_LENGTH"] = str(args.max_length)  # the children read it
    jobs = args.jobs or ["lab", trl_job()]
    n_params = 134_515_008  # SmolLM2-135M, tied embeddings counted once (used as the LM head)
    # Alternating the jobs (lab, TRL; TRL, lab; ...) gives each the machine's fast and slow
    # spells alike; a ratio is taken within a round, and the median over rounds is the figure.
    runs = {job: [] for job in jobs}
    for round_ in range(args.rounds):
        for job in (jobs if round_ % 2 == 0 else jobs[::-1]):
            print(f"round {round_ + 1}/{args.rounds}: {job} ...", file=sys.stderr, flush=True)
            runs[job].append({**timed_run(job, n_params), "load_average": os.getloadavg()[0]})
            print(json.dumps({job: runs[job][-1]}), file=sys.stderr, flush=True)
    rows = {}
    for job, done in runs.items():
        middle = sorted(done, key=lambda r: r["seconds"])[len(done) // 2]
        rows[job] = {**middle, "seconds": spread([r["seconds"] for r in done]),
                     "peak_rss_gb_max": max(r["peak_rss_gb"] for r in done), "runs": done}
    from bench.machine import dated_result, machine
    from lab.atomic import write_json

    report = {"date": time.strftime("%Y-%m-%d %H:%M"), **machine(), "cpu_threads": os.cpu_count(),
              "rounds": args.rounds, "max_length": max_length(),
              "matmul_peak_gflops": {k: max(r["matmul_peak_gflops"][w][k] for rs in runs.values()
                                            for r in rs for w in ("before", "after"))
                                     for k in ("fp32", "bf16")},
              "jobs": rows}
    if "lab" in rows:
        lab = runs["lab"]
        report["lab_fraction_of_peak"] = {
            "fp32": spread([r["fraction_of_fp32_peak"] for r in lab]),
            "bf16": spread([r["fraction_of_bf16_peak"] for r in lab])}
        report["speedup_vs"] = {j: spread([o["seconds"] / m["seconds"] for o, m in zip(runs[j], lab)])
                                for j in rows if j != "lab"}
        report["held_out_nll_ratio_vs"] = {j: rows["lab"]["held_out_nll"] / rows[j]["held_out_nll"]
                                           for j in rows if j != "lab"}
    out = dated_result("train_vs_trl" + (f"_len{max_length()}" if max_length() != MAX_LEN else ""))
    write_json(out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "jobs"}, indent=2))
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
