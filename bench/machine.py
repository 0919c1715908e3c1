"""Where a benchmark ran: the commit and the CPU kind, and the result file named after them.

The lab's machines come in two kinds (AVX2 only, where bf16 is emulated and the lab trains in
fp32; AVX512-BF16, where it trains in bf16): a figure means something only beside its kind.
"""
from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def kind_tag() -> str:
    """`bf16` where the CPU has native bf16 products (avx512_bf16), else `avx2`."""
    return "bf16" if "avx512_bf16" in _cpuinfo() else "avx2"


def machine() -> dict:
    """The commit and the CPU a run used: a time means something only beside these."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    cpuinfo = _cpuinfo()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    bf16 = cpuinfo.count("avx512_bf16")
    return {"commit": git("rev-parse", "--short=12", "HEAD"),
            "uncommitted": git("status", "--porcelain", "--untracked-files=no", "--",
                               "lab", "widgets", "notebooks", "bench").splitlines(),
            "cpu_avx512_bf16": bf16, "cpu_kind": "avx512_bf16" if bf16 else "AVX2 only (fp32 training)",
            "cpu_model": model}


def dated_result(name: str) -> Path:
    """`bench/results/NAME.KIND-YYYYMMDD.json`: one file per CPU kind and day, so a run on one
    kind never overwrites the other kind's figures."""
    return RESULTS / f"{name}.{kind_tag()}-{time.strftime('%Y%m%d')}.json"
