"""The torch-private operations the lab uses for speed, each with a public fallback.

A workshop must never be stranded by a torch release that renames or drops a private op. Every
private call of the lab goes through this module: each function tries the private op once,
and if it is missing or fails, it (and every later call) takes the public path, which computes
the same thing with ordinary tensor operations, only slower. `PRIVATE` turns the private ops
off altogether (tests force the fallbacks that way; `SFT_LAB_PUBLIC_TORCH=1` does it for a
whole process).

- `adamw_`: torch's fused AdamW kernel (`torch._fused_adamw_`, what `AdamW(fused=True)` runs).
- `silu_backward`: the SiLU derivative in one pass (`torch.ops.aten.silu_backward`).
- `pack_linear` / `packed_linear`: oneDNN-packed weights for batched decoding on a CPU
  (`torch.ops.mkldnn._reorder_linear_weight`, `_linear_pointwise`).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

PRIVATE = os.environ.get("SFT_LAB_PUBLIC_TORCH", "") in ("", "0")
_broken: set[str] = set()  # private ops that failed once in this process


def _private(name: str) -> bool:
    return PRIVATE and name not in _broken


def adamw_(param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
           count: torch.Tensor, lr: float, betas: tuple[float, float], eps: float,
           weight_decay: float) -> None:
    """One AdamW update of `param` in place (moments `m`, `v` too), after `count` steps
    (`count` already includes this one), as torch's `AdamW` computes it."""
    if _private("adamw"):
        try:
            torch._fused_adamw_([param], [grad], [m], [v], [], [count], lr=lr, beta1=betas[0],
                                beta2=betas[1], weight_decay=weight_decay, eps=eps, amsgrad=False,
                                maximize=False, grad_scale=None, found_inf=None)
            return
        except (AttributeError, RuntimeError, TypeError):
            _broken.add("adamw")
    step = float(count)
    param.mul_(1 - lr * weight_decay)
    m.lerp_(grad, 1 - betas[0])
    v.mul_(betas[1]).addcmul_(grad, grad, value=1 - betas[1])
    bias1, bias2 = 1 - betas[0] ** step, 1 - betas[1] ** step
    denom = (v.sqrt() / bias2 ** 0.5).add_(eps)
    param.addcdiv_(m, denom, value=-lr / bias1)


def silu_backward(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d silu(x) / dx times `grad`: grad * s * (1 + x * (1 - s)), s = sigmoid(x)."""
    if _private("silu_backward"):
        try:
            return torch.ops.aten.silu_backward(grad, x)
        except (AttributeError, RuntimeError):
            _broken.add("silu_backward")
    s = torch.sigmoid(x)
    return grad * s * (1 + x * (1 - s))


def can_pack(weight: torch.Tensor) -> bool:
    """True when `pack_linear` would pack this weight (fp32 on a CPU with oneDNN)."""
    if not _private("mkldnn") or weight.device.type != "cpu" or weight.dtype != torch.float32:
        return False
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._linear_pointwise)
    except (AttributeError, RuntimeError):
        _broken.add("mkldnn")
        return False


def pack_linear(weight: torch.Tensor, rows: int) -> torch.Tensor | None:
    """A oneDNN-packed copy of `weight` for products with about `rows` rows, or None (then
    `packed_linear` is never called and plain `F.linear` is used)."""
    if not can_pack(weight):
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
    except (AttributeError, RuntimeError):
        _broken.add("mkldnn")
        return None


def packed_linear(x: torch.Tensor, packed: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight.T + bias with the packed weight (the same numbers as `F.linear`)."""
    if _private("mkldnn"):
        try:
            return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
        except (AttributeError, RuntimeError):
            _broken.add("mkldnn")
    return F.linear(x, weight, bias)
