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
  the update turns them into fp32 a slice at a time (`SLICE`), in a small buffer that stays in
  the CPU's cache, so the step reads and writes each weight's bytes once and allocates nothing.
Memory per parameter: 2 + 2 (weight) + 2 (gradient) + 8 (AdamW moments) bytes, against
4 + 4 + 8 in fp32 and 4 + 4 + 8 + autocast's bf16 copies with autocast.

Gradients live for the whole run (zeroed after each step, not freed): autograd adds into them
in place, and the objective can too (`objective.token_nll(accumulate=True)`), so no step pays
for fresh pages that the next frees again.

When the run ends, normally or not, the model gets its fp32 weights back: outside training it
is the same fp32 model as before. Without bf16 hardware nothing is converted: one fused AdamW
steps the fp32 parameters.

>>> from lab.models import load_model
>>> model, _ = load_model("tiny-random")
>>> with MasterWeights(model, torch.bfloat16, lr=1e-3) as w:  # forward, backward, then w.step(lr)
...     w.split, model.lm_head.weight.dtype, model.lm_head.weight.grad.dtype
(True, torch.bfloat16, torch.bfloat16)
>>> model.lm_head.weight.dtype, model.lm_head.weight.grad
(torch.float32, None)
"""
from __future__ import annotations

import torch
from torch import nn

from . import torch_ops

SLICE = 1 << 18  # elements per slice of the bf16 update on a CPU: 3 x 1 MB of scratch
BETAS, EPS = (0.9, 0.999), 1e-8  # torch's AdamW defaults


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


def _adamw(param, grad, m, v, count, lr: float, weight_decay: float) -> None:
    """One AdamW update of `param` in place with torch's fused kernel (what `AdamW(fused=True)`
    runs: 5x faster than its per-tensor loop on a CPU, no temporaries; `torch_ops` falls back
    to plain tensor operations if a torch release lacks it). The moments `m`, `v` are ours,
    not an optimiser's, so that they are taken once, before any activation."""
    torch_ops.adamw_(param, grad, m, v, count, lr, BETAS, EPS, weight_decay)


class MasterWeights:
    """AdamW over `model`'s parameters (each tied weight once); bf16 weights with fp32 masters
    while the block runs when `dtype` is bf16, plain fp32 otherwise."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None, lr: float,
                 weight_decay: float = 0.0, max_grad_norm: float = 0.0):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.split = dtype == torch.bfloat16 and all(p.dtype == torch.float32 for p in self.params)
        self.max_grad_norm = max_grad_norm
        self.decay = [_decay(p, weight_decay) for p in self.params]
        device = self.params[0].device
        largest = max(p.numel() for p in self.params)
        # a GPU runs each whole tensor at once: there a kernel launch per slice would cost more
        self.slice = min(SLICE, largest) if device.type == "cpu" else largest
        self.master, self.grad = (torch.empty(self.slice, device=device) for _ in range(2))
        self.bits = torch.empty(self.slice, dtype=torch.int32, device=device)
        self.low: list[torch.Tensor] = []      # split: lower 16 bits of each master
        self.moments: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.count = torch.zeros((), device=device)  # steps taken, for Adam's bias correction

    def _slices(self, *tensors: torch.Tensor):
        """(slice of each tensor, flattened) for consecutive runs of `self.slice` elements.
        Tensors written through must be contiguous (all of ours are); others are only read."""
        flat = [t.reshape(-1) for t in tensors]
        for s in range(0, len(flat[0]), self.slice):
            yield [f[s:s + self.slice] for f in flat]

    def __enter__(self) -> MasterWeights:
        """Everything that lives for the whole run is taken here, before the first activation:
        allocated later, between a step's freed activations, it would leave holes in the heap
        that the process keeps (about 0.3 GB more at the peak, measured). Moments and gradients
        are taken before any weight changes (running out of memory there leaves the model as it
        was); an error while the weights are split turns the split ones back."""
        def zeros(p, dtype):
            return torch.zeros(p.shape, dtype=dtype, device=p.device)

        with torch.no_grad():
            # in the weights' dtype, taken before any split: fp32 masters get fp32 moments
            self.moments = [(zeros(p, p.dtype), zeros(p, p.dtype)) for p in self.params]
            grads = [zeros(p, torch.bfloat16 if self.split else p.dtype) for p in self.params]
            try:
                for p, grad in zip(self.params, grads):
                    if self.split:
                        hi, lo = zeros(p, torch.bfloat16), zeros(p, torch.int16)
                        for x, h, low in self._slices(p.detach(), hi, lo):
                            _split(x, h, low, self.bits[:len(x)])
                        p.data = hi
                        self.low.append(lo)
                    p.grad = grad
            except BaseException:
                self.__exit__()
                raise
        return self

    def _clip_scale(self) -> float:
        """The factor that brings the gradients' total norm down to `max_grad_norm` (or 1)."""
        if not self.max_grad_norm:
            return 1.0
        total = torch.zeros((), device=self.grad.device)
        for p in self.params:
            for (g,) in self._slices(p.grad):
                buf = self.grad[:len(g)].copy_(g)  # fp32, whatever the gradient's dtype
                total += torch.dot(buf, buf)
        return min(1.0, self.max_grad_norm / (float(total.sqrt()) + 1e-6))

    def step(self, lr: float) -> None:
        """Clip the step's gradients (total norm), update every weight, zero the gradients."""
        scale = self._clip_scale()
        self.count += 1
        if not self.split:
            for p, (m, v), decay in zip(self.params, self.moments, self.decay):
                if scale < 1.0:
                    p.grad.mul_(scale)
                _adamw(p.data, p.grad, m, v, self.count, lr, decay)
                p.grad.zero_()
            return
        with torch.no_grad():
            for p, lo, (m, v), decay in zip(self.params, self.low, self.moments, self.decay):
                for hi, low, g, m_s, v_s in self._slices(p.data, lo, p.grad, m, v):
                    n = len(hi)
                    master, grad, bits = self.master[:n], self.grad[:n], self.bits[:n]
                    _join(hi, low, master, bits)
                    grad.copy_(g)
                    if scale < 1.0:
                        grad.mul_(scale)
                    _adamw(master, grad, m_s, v_s, self.count, lr, decay)
                    _split(master, hi, low, bits)
                p.grad.zero_()

    def __exit__(self, *exc) -> None:
        with torch.no_grad():
            for p, lo in zip(self.params, self.low):  # every weight split in `__enter__`
                master = torch.empty(p.shape, device=p.device)
                for hi, low, out in self._slices(p.data, lo, master):
                    _join(hi, low, out, self.bits[:len(hi)])
                p.data = master
            for p in self.params:
                p.grad = None
        self.low, self.moments = [], []
