"""The SFT objective: negative log-likelihood of each trained (response) token.

Position t predicts token t+1, so labels shift left by one. Only positions whose next token is
trained go through the output layer: with a 49k-word vocabulary the output layer is a large
share of a small model's compute, and prompt positions would be thrown away anyway.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .masks import IGNORE


def token_nll(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL of every trained token, and the batch row it belongs to.

    input_ids, attention_mask, labels: (B, T). Returns nll: (N,) and rows: (N,), N = trained
    tokens in the batch. `nll.mean()` is the loss SFT minimises.
    """
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask,
                              use_cache=False).last_hidden_state  # (B, T, H)
    targets = labels[:, 1:]                                         # (B, T-1)
    where = targets != IGNORE                                       # (B, T-1)
    h = hidden[:, :-1][where]                                       # (N, H)
    logits = model.get_output_embeddings()(h).float()               # (N, V)
    nll = F.cross_entropy(logits, targets[where], reduction="none")  # (N,)
    rows = where.nonzero()[:, 0]                                    # (N,)
    return nll, rows
