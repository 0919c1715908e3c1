"""The SFT objective: negative log-likelihood of each trained (response) token.

Position t predicts token t+1, so labels shift left by one. Only positions whose next token is
trained go through the output layer: with a 49k-word vocabulary the output layer is a large
share of a small model's compute, and prompt positions would be thrown away anyway.

The output layer and the cross-entropy run together, a chunk of tokens at a time
(`linear_nll`): the full (tokens x vocabulary) logits, their log-softmax and its gradient are
never held at once, which takes a few hundred MB off a training step's peak memory for the cost
of computing one chunk's logits again in the backward pass.
"""
from __future__ import annotations

import torch

from .masks import IGNORE

CHUNK = 128  # tokens per slice of logits: 128 x 49,152 fp32 is 25 MB


def _compute_dtype(h: torch.Tensor) -> torch.dtype:
    kind = h.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else h.dtype


class LinearNLL(torch.autograd.Function):
    """nll[i] = logsumexp(h[i] @ W.T) - (h[i] @ W.T)[target[i]], in chunks of `CHUNK` rows."""

    @staticmethod
    def forward(ctx, h, weight, targets, accumulate):
        dtype = _compute_dtype(h)
        w = weight.to(dtype)
        lse = torch.empty(len(h), device=h.device)
        picked = torch.empty(len(h), device=h.device)
        for s in range(0, len(h), CHUNK):
            logits = (h[s:s + CHUNK].to(dtype) @ w.T).float()
            picked[s:s + CHUNK] = logits.gather(1, targets[s:s + CHUNK, None])[:, 0]
            top = logits.amax(1, keepdim=True)  # logsumexp in place: no second slice of logits
            lse[s:s + CHUNK] = logits.sub_(top).exp_().sum(1).log_().add_(top[:, 0])
        ctx.save_for_backward(h, weight, targets, lse)
        ctx.dtype, ctx.accumulate = dtype, accumulate
        return lse - picked

    @staticmethod
    def backward(ctx, grad_nll):
        h, weight, targets, lse = ctx.saved_tensors
        w = weight.to(ctx.dtype)
        grad_h = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        in_place = ctx.accumulate and ctx.needs_input_grad[1] and weight.dtype == ctx.dtype
        if in_place and weight.grad is None:
            weight.grad = torch.zeros_like(weight)
        grad_w = weight.grad if in_place else None  # summed over the slices in place
        for s in range(0, len(h), CHUNK):
            hs = h[s:s + CHUNK].to(ctx.dtype)
            # d nll / d logits = softmax(logits) - onehot(target), scaled by the incoming gradient
            g = (hs @ w.T).float().sub_(lse[s:s + CHUNK, None]).exp_()
            g[torch.arange(len(hs), device=h.device), targets[s:s + CHUNK]] -= 1
            g = g.mul_(grad_nll[s:s + CHUNK, None]).to(ctx.dtype)
            if grad_h is not None:
                grad_h[s:s + CHUNK] = (g @ w).to(h.dtype)
            if not ctx.needs_input_grad[1]:
                continue
            if grad_w is None:
                grad_w = g.T @ hs
            else:  # in place: no (vocabulary x hidden) temporary per slice
                grad_w.addmm_(g.T, hs)
        if in_place or grad_w is None:
            return grad_h, None, None, None
        return grad_h, grad_w.to(weight.dtype), None, None


def linear_nll(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
               accumulate: bool = False) -> torch.Tensor:
    """NLL of `targets` (N,) under logits `h @ weight.T` (h: (N, H), weight: (V, H)), per row.

    accumulate: the backward pass adds the weight's gradient straight into `weight.grad`, as
    `loss.backward()` would, but without a (vocabulary x hidden) temporary (113 MB for SmolLM2
    in fp32). Only for `backward()`: `torch.autograd.grad` would not see that gradient.
    """
    return LinearNLL.apply(h, weight, targets, accumulate)


def token_nll(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              labels: torch.Tensor, accumulate: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL of every trained token, and the batch row it belongs to.

    input_ids, attention_mask, labels: (B, T). Returns nll: (N,) and rows: (N,), N = trained
    tokens in the batch. `nll.mean()` is the loss SFT minimises. accumulate: see `linear_nll`.
    """
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                              use_cache=False).last_hidden_state  # (B, T, H)
    targets = labels[:, 1:]                                         # (B, T-1)
    where = targets != IGNORE                                       # (B, T-1)
    h = hidden[:, :-1][where]                                       # (N, H)
    head = model.get_output_embeddings()
    if getattr(head, "bias", None) is not None:                     # rare: a biased output layer
        logits = head(h).float()
        nll = torch.nn.functional.cross_entropy(logits, targets[where], reduction="none")
    else:
        nll = linear_nll(h, head.weight, targets[where], accumulate)          # (N,)
    rows = where.nonzero()[:, 0]                                    # (N,)
    return nll, rows
