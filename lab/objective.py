"""The SFT objective: negative log-likelihood of each trained (response) token.

Position t predicts token t+1, so labels shift left by one. Only positions whose next token is
trained go through the output layer: with a 49k-word vocabulary the output layer is a large
share of a small model's compute, and prompt positions would be thrown away anyway.

The output layer and the cross-entropy run together, a slice of tokens at a time
(`linear_nll`): the fp32 (tokens x vocabulary) logits and their softmax never exist for more
than one slice; of them only the gradient with respect to the logits is kept for the backward
pass, in the compute dtype. That takes a few hundred MB off a training step's peak memory.
"""
from __future__ import annotations

import torch

from .masks import IGNORE

CHUNK = 128  # tokens per slice of logits: 128 x 49,152 fp32 is 25 MB


def _compute_dtype(h: torch.Tensor) -> torch.dtype:
    kind = h.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else h.dtype


class LinearNLL(torch.autograd.Function):
    """nll[i] = logsumexp(h[i] @ W.T) - (h[i] @ W.T)[target[i]], in slices of `CHUNK` rows.

    When a gradient will be wanted, the forward pass also keeps d nll / d logits (softmax minus
    the one-hot target) in the compute dtype, while each slice's logits are at hand: the
    backward pass is then two products over all rows, with no logits to compute again and no
    pass over a (rows x vocabulary) tensor (the speed bench job: about 1 s of 29 faster).
    """

    @staticmethod
    def forward(ctx, h, weight, targets, accumulate, keep_grad):
        dtype = _compute_dtype(h)
        acc = torch.promote_types(dtype, torch.float32)  # softmax in fp32 at least
        w = weight.to(dtype)
        lse = torch.empty(len(h), device=h.device, dtype=acc)
        picked = torch.empty(len(h), device=h.device, dtype=acc)
        dlogits = h.new_empty(len(h), len(w), dtype=dtype) if keep_grad else None
        for s in range(0, len(h), CHUNK):
            rows = slice(s, s + CHUNK)
            logits = (h[rows].to(dtype) @ w.T).to(acc)
            picked[rows] = logits.gather(1, targets[rows, None])[:, 0]
            top = logits.amax(1, keepdim=True)  # logsumexp in place: no second slice of logits
            exp = logits.sub_(top).exp_()
            total = exp.sum(1, keepdim=True)
            lse[rows] = total[:, 0].log().add_(top[:, 0])
            if dlogits is not None:
                probs = exp.div_(total)
                probs[torch.arange(len(probs), device=h.device), targets[rows]] -= 1
                dlogits[rows] = probs
        ctx.save_for_backward(h, weight, dlogits)
        ctx.dtype, ctx.acc, ctx.accumulate = dtype, acc, accumulate
        return lse - picked

    @staticmethod
    def backward(ctx, grad_nll):
        h, weight, dlogits = ctx.saved_tensors
        scale = grad_nll[:, None]                         # d loss / d nll, one per row
        grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_h = ((dlogits @ weight.to(ctx.dtype)).to(ctx.acc) * scale).to(h.dtype)
        if ctx.needs_input_grad[1]:
            hs = (h.to(ctx.acc) * scale).to(ctx.dtype)    # the scale on h: (rows x hidden), small
            if ctx.accumulate and weight.is_leaf and weight.dtype == ctx.dtype:
                if weight.grad is None:
                    weight.grad = torch.zeros_like(weight)
                weight.grad.addmm_(dlogits.T, hs)         # no (vocabulary x hidden) temporary
            else:
                grad_w = (dlogits.T @ hs).to(weight.dtype)
        return grad_h, grad_w, None, None, None


def linear_nll(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
               accumulate: bool = False) -> torch.Tensor:
    """NLL of `targets` (N,) under logits `h @ weight.T` (h: (N, H), weight: (V, H)), per row.

    accumulate: the backward pass adds the weight's gradient straight into `weight.grad`, as
    `loss.backward()` would, but without a (vocabulary x hidden) temporary (113 MB for SmolLM2
    in fp32). Only for `backward()`: `torch.autograd.grad` would not see that gradient.
    """
    keep_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    return LinearNLL.apply(h, weight, targets, accumulate, keep_grad)


def token_nll(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              labels: torch.Tensor, accumulate: bool = False,
              prefix: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL of every trained token, and the batch row it belongs to.

    input_ids, attention_mask, labels: (B, T). Returns nll: (N,) and rows: (N,), N = trained
    tokens in the batch. `nll.mean()` is the loss SFT minimises. accumulate: see `linear_nll`.
    prefix: the first `prefix` tokens are the same in every row and predict no target
    (`masks.shared_prefix`); on the lab's own models (`prefix_kv`) they run once for the batch,
    in scoring and in training alike: the same values and gradients up to rounding.
    """
    kv_for = getattr(model, "prefix_kv", None)
    if prefix and len(input_ids) > 1 and kv_for is not None:
        cache = kv_for(input_ids[:1, :prefix])
        hidden = model.base_model(input_ids[:, prefix:], attention_mask,
                                  cache=cache).last_hidden_state    # (B, T - prefix, H)
        return hidden_nll(model, hidden, labels[:, prefix:], accumulate)
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                              use_cache=False).last_hidden_state  # (B, T, H)
    return hidden_nll(model, hidden, labels, accumulate)


def hidden_nll(model, hidden: torch.Tensor, labels: torch.Tensor,
               accumulate: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_nll` from the decoder's final hidden states (B, T, H): the output layer and the loss."""
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
