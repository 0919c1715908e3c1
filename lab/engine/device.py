"""Pick the device, the autocast dtype and the CPU thread count, once, for everyone.

CUDA first, then Apple MPS, then CPU. bf16 is used where the hardware does bf16 matrix work
natively (CUDA with bf16, CPUs with AVX512-BF16 or AMX): training with fp32 master weights
(`precision.MasterWeights`), scoring under autocast. Elsewhere (e.g. AVX2-only CPUs) emulated
bf16 is slower than fp32, and everything is fp32.
"""
from __future__ import annotations

import contextlib
import functools
import os

import torch

# oneDNN (bf16 and packed matrix products on CPUs) caches a compiled kernel, with its buffers,
# for each shape it meets; a training run meets hundreds (every micro-batch length). The
# default cache of 1024 held about 140 MB of a 3 GB budget for no measured speed; 64 holds
# what a step reuses. Read when oneDNN first runs, so set at import, unless the user set it.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists avx512_bf16 or amx_bf16 (Linux; False elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the device computes it natively, else None (plain fp32). `SFT_LAB_PRECISION=fp32`
    forces fp32 (what a CPU without native bf16 runs; for comparisons and for hardware whose
    bf16 misbehaves); `SFT_LAB_PRECISION=bf16` forces bf16 (what a native-bf16 CPU runs, emulated
    and slow elsewhere: to test that path on any machine)."""
    forced = os.environ.get("SFT_LAB_PRECISION", "").lower()
    if forced in ("fp32", "bf16"):
        return torch.bfloat16 if forced == "bf16" else None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(device: torch.device):
    """Within the block, compute in `autocast_dtype(device)` (nothing changes where that is fp32)."""
    dtype = autocast_dtype(device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        yield


def set_threads() -> int:
    """Use one intra-op thread per available core (respects CPU affinity and containers)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


@functools.lru_cache(maxsize=None)
def _malloc_trim():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


def release_free_memory() -> None:
    """Give memory freed by the last step back to the OS (glibc's `malloc_trim`).

    A training step frees hundreds of MB of activations of shapes that change from batch to
    batch; glibc keeps such holes in its heap, so without this the process's resident memory
    creeps up by about a GB over a run although the live tensors do not grow. Each call has a
    price: the next step touches those pages afresh, a page fault per 4 KB (trimming after
    every forward and backward cost the speed bench job 13% in bf16). The trainer trims once a
    step in bf16 (2.6 GiB peak) and after every backward in fp32 (2.7 GiB instead of 2.9).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
