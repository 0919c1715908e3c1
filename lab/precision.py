"""The optimiser side of training: AdamW, gradient clipping and, where the hardware computes
bf16 natively (see `device.autocast_dtype`), bf16 mixed precision with fp32 master weights.

Mixed precision here keeps a training step within SmolLM2-135M's 3 GB budget, where autocast
(bf16 copies made per product, fp32 gradients) did not:
- the model's weights are bf16 for the duration of a run, so every product, activation and
  gradient is bf16 with no casting in between (autocast's casts cost a fifth of a CPU step);
- the fp32 master of each weight is not stored as a second tensor: its upper 16 bits *are* the
  bf16 weight (a bf16 number is the top half of an fp32 one), and only the lower 16 bits are
  kept beside it. The bf16 weight is thus the master truncated, not rounded: at most one bf16
  step away instead of half a step, while every update is applied to the exact fp32 value;
- gradients accumulate over a step's micro-batches in bf16 (the dtype autograd gives them);
  each is turned into fp32 for its own update only, one tensor at a time.
Memory per parameter: 2 + 2 (weight) + 2 (gradient) + 8 (AdamW moments) bytes, against
4 + 4 + 8 in fp32 and 4 + 4 + 8 + autocast's bf16 copies with autocast.

When the run ends, normally or not, the model gets its fp32 weights back: outside training it
is the same fp32 model as before. Without bf16 hardware nothing is converted: one fused AdamW
steps the fp32 parameters.

>>> # with MasterWeights(model, torch.bfloat16, lr=5e-5) as w: ...; loss.backward(); w.step(lr)
"""
from __future__ import annotations

import torch
from torch import nn


def _join(hi: torch.Tensor, lo: torch.Tensor, out: torch.Tensor, scratch: torch.Tensor) -> None:
    """fp32 values into `out` from their upper (bf16 `hi`) and lower (int16 `lo`) 16 bits;
    `scratch`: an int32 buffer of the same shape."""
    out.copy_(hi)                                  # the upper bits, the lower ones zero
    scratch.copy_(lo.view(torch.uint16))
    out.view(torch.int32).bitwise_or_(scratch)


def _split(x: torch.Tensor, hi: torch.Tensor, lo: torch.Tensor, scratch: torch.Tensor) -> None:
    """Write fp32 `x`'s upper 16 bits into bf16 `hi` and its lower 16 into int16 `lo`."""
    bits = x.view(torch.int32)
    hi.view(torch.int16).copy_(torch.bitwise_right_shift(bits, 16, out=scratch))
    lo.copy_(bits)                                 # int32 -> int16 keeps the lower 16 bits


def _decay(p: torch.Tensor, weight_decay: float) -> float:
    """No weight decay on vectors (norm weights, biases)."""
    return weight_decay if p.dim() >= 2 else 0.0


def _adamw(groups: list[dict], lr: float) -> torch.optim.AdamW:
    """One fused kernel per tensor where torch has it (5x faster than the per-tensor loop on a
    CPU, no temporaries)."""
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except RuntimeError:  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=lr, foreach=False)


class MasterWeights:
    """AdamW over `model`'s parameters (each tied weight once); bf16 weights with fp32 masters
    while the block runs when `dtype` is bf16, plain fp32 otherwise."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None, lr: float,
                 weight_decay: float = 0.0, max_grad_norm: float = 0.0):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.split = dtype == torch.bfloat16 and all(p.dtype == torch.float32 for p in self.params)
        self.max_grad_norm = max_grad_norm
        self.low: list[torch.Tensor] = []
        if self.split:
            # the fp32 value under update; its storage is set per step (the state stays with it)
            self.holders = [torch.empty(0, device=p.device) for p in self.params]
            self.optims = [_adamw([{"params": [h], "weight_decay": _decay(p, weight_decay)}], lr)
                           for h, p in zip(self.holders, self.params)]
        else:
            self.optims = [_adamw([{"params": [p], "weight_decay": _decay(p, weight_decay)}
                                   for p in self.params], lr)]

    def _scratch(self, dtype: torch.dtype) -> torch.Tensor:
        """A flat buffer as large as the largest weight, taken once per step rather than once
        per tensor: fresh memory costs a page fault per 4 KB (this took 0.7 of the #3 bench
        job's 5.5 million faults off, and 0.05 GiB off its peak)."""
        p = self.params[0]
        return torch.empty(max(q.numel() for q in self.params), dtype=dtype, device=p.device)

    def __enter__(self) -> MasterWeights:
        if self.split:
            scratch = self._scratch(torch.int32)
            with torch.no_grad():
                for p in self.params:
                    hi = torch.empty_like(p, dtype=torch.bfloat16)
                    lo = torch.empty_like(p, dtype=torch.int16)
                    _split(p.detach(), hi, lo, scratch[:p.numel()].view(p.shape))
                    p.data = hi
                    self.low.append(lo)
        return self

    def step(self, lr: float) -> None:
        """Clip the step's gradients (total norm), update every weight, clear the gradients."""
        grads = [p.grad for p in self.params if p.grad is not None]
        scale = 1.0
        if self.max_grad_norm and grads:
            norm = torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads]))
            scale = min(1.0, self.max_grad_norm / (float(norm) + 1e-6))
        for opt in self.optims:
            for group in opt.param_groups:
                group["lr"] = lr
        if not self.split:
            if scale < 1.0:
                for g in grads:
                    g.mul_(scale)
            self.optims[0].step()
            self.optims[0].zero_grad(set_to_none=True)
            return
        master, grad, bits = (self._scratch(t) for t in (torch.float32, torch.float32, torch.int32))
        with torch.no_grad():
            for p, lo, holder, opt in zip(self.params, self.low, self.holders, self.optims):
                if p.grad is None:
                    continue
                n, shape = p.numel(), p.shape
                _join(p.data, lo, master[:n].view(shape), bits[:n].view(shape))
                holder.data = master[:n].view(shape)
                holder.grad = grad[:n].view(shape).copy_(p.grad)
                if scale < 1.0:
                    holder.grad.mul_(scale)
                opt.step()
                _split(holder.data, p.data, lo, bits[:n].view(shape))
                holder.data, holder.grad, p.grad = holder.data.new_empty(0), None, None

    def __exit__(self, *exc) -> None:
        if self.split:
            bits = self._scratch(torch.int32)
            with torch.no_grad():
                for p, lo in zip(self.params, self.low):
                    master = torch.empty_like(p, dtype=torch.float32)
                    _join(p.data, lo, master, bits[:p.numel()].view(p.shape))
                    p.data, p.grad = master, None
        self.low = []
