"""Generate replies: batched (left padding), seeded, greedy or sampled, stopping at end of turn.

A small decoding loop instead of `model.generate`: one forward pass for the whole batch of
prompts, then one token per step for every row with a KV cache, computing logits for the last
position only. Rows that reach the end of turn leave the batch (and the KV cache) at once.
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable

import torch

from .masks import common_start, render_prompt
from .records import Conversation

OnToken = Callable[[int, str], None]  # (prompt index, newly decoded text)
REPLY_TOKENS = 96  # a reply's length in the Compare tab, and at a timeline's first and last point


@dataclass
class GenConfig:
    max_new_tokens: int = 128  # upper bound on reply length
    temperature: float = 0.0   # 0 = greedy (deterministic); > 0 samples
    top_p: float = 1.0         # nucleus sampling: keep the smallest set of tokens with this mass
    seed: int = 0              # each prompt samples from its own generator seeded with this
    batch_size: int = 8        # prompts per forward pass


def as_conversation(prompt: str | Conversation) -> Conversation:
    return prompt if isinstance(prompt, Conversation) else Conversation.single(prompt)


def stop_ids(model, tokenizer) -> set[int]:
    """Token ids that end a reply: EOS, the model's configured EOS ids, and ChatML's <|im_end|>."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids |= set(eos) if isinstance(eos, (list, tuple)) else {eos}
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return {i for i in ids if i is not None}


def _cache_name(model) -> str:
    """The name a model's forward takes (and returns) its KV cache by: transformers 5.24 renamed
    `past_key_values` to `cache` (the old name warns, and is to go in 5.40); the lab's own class
    and older transformers use `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _pick(logits: torch.Tensor, cfg: GenConfig, gens: list[torch.Generator]) -> torch.Tensor:
    """Next token per row from last-position logits (B, V)."""
    if cfg.temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / cfg.temperature, dim=-1)
    if cfg.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > cfg.top_p
        sorted_p[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.stack([torch.multinomial(p.cpu(), 1, generator=g)[0] for p, g in zip(probs, gens)]
                       ).to(logits.device)


@torch.no_grad()
def _generate_batch(model, tokenizer, texts: list[str], cfg: GenConfig,
                    on_token: OnToken | None) -> list[list[int]]:
    """The reply tokens of each text (a rendered prompt), end of turn left out."""
    device = next(model.parameters()).device
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    # the tokens every prompt starts with (the chat template's system prompt) run once, on the
    # lab's own models; the rest of each prompt is left-padded after them
    share = (common_start(rows, min(map(len, rows)) - 1)
             if len(rows) > 1 and hasattr(model, "prefix_cache") else 0)
    prefix, rows = rows[0][:share], [r[share:] for r in rows]
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)  # (B, T)
    mask = torch.tensor([[1] * share + [0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    stops = stop_ids(model, tokenizer)
    gens = [torch.Generator().manual_seed(cfg.seed) for _ in rows]
    out: list[list[int]] = [[] for _ in rows]
    shown = [""] * len(rows)
    live = list(range(len(rows)))  # original index of each row still writing
    cache, step_ids, cache_name = None, ids, _cache_name(model)
    # several rows: decode on packed weights where the model offers them (lab.engine.llama, CPU)
    packing = getattr(model, "packed_weights", None)
    with packing(len(rows)) if packing and len(rows) > 1 else nullcontext():
        if share:
            cache = model.prefix_cache(torch.tensor([prefix], device=device), len(rows))
        for _ in range(cfg.max_new_tokens):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -step_ids.shape[1]:]
            res = model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                        use_cache=True, logits_to_keep=1, **{cache_name: cache})
            cache = getattr(res, cache_name)
            nxt = _pick(res.logits[:, -1], cfg, [gens[r] for r in live])  # (B_live,)
            keep = []
            for j, tok in enumerate(nxt.tolist()):
                if tok in stops:
                    continue
                r = live[j]
                out[r].append(tok)
                keep.append(j)
                if on_token is not None:
                    text = tokenizer.decode(out[r], skip_special_tokens=True)
                    if len(text) > len(shown[r]) and not text.endswith("\ufffd"):
                        on_token(r, text[len(shown[r]):])
                        shown[r] = text
            if not keep:
                break
            if len(keep) < len(live):  # drop finished rows: no compute spent on them
                idx = torch.tensor(keep, device=device)
                cache.batch_select_indices(idx)
                mask, nxt = mask[idx], nxt[idx]
                live = [live[j] for j in keep]
            step_ids = nxt[:, None]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return out


def decode(tokenizer, ids: list[int]) -> str:
    """A reply's text from its tokens."""
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


@contextmanager
def _eval_mode(model):
    """Eval mode (no dropout) for the block; the model's own mode again afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def continue_text(model, tokenizer, text: str, cfg: GenConfig | None = None) -> str:
    """The model's continuation of raw `text`, no chat template applied (e.g. to see what a
    model writes after "<|im_start|>user\n"); it stops at an end-of-turn token, as replies do."""
    with _eval_mode(model):
        return decode(tokenizer, _generate_batch(model, tokenizer, [text], cfg or GenConfig(), None)[0])


def generate(model, tokenizer, prompts: list[str | Conversation], cfg: GenConfig | None = None,
             on_token: OnToken | None = None) -> list[str]:
    """The model's reply to each prompt (a user message, or a conversation ending on a user turn).

    With the default model, "What is the capital of France?" gets "The capital of France is
    Paris." (tests/test_default_model.py); the tiny random model writes noise, but as many
    replies as prompts, the same ones every time when greedy:

    >>> from lab.models import load_model
    >>> model, tok = load_model("tiny-random")
    >>> replies = generate(model, tok, ["Hi!", "2+2?"], GenConfig(max_new_tokens=4))
    >>> len(replies), replies == generate(model, tok, ["Hi!", "2+2?"], GenConfig(max_new_tokens=4))
    (2, True)
    """
    return [decode(tokenizer, ids) for ids in generate_ids(model, tokenizer, prompts, cfg, on_token)]


def generate_ids(model, tokenizer, prompts: list[str | Conversation], cfg: GenConfig | None = None,
                 on_token: OnToken | None = None) -> list[list[int]]:
    """`generate`'s replies as tokens: a reply's first N tokens are what a greedy run with
    `max_new_tokens=N` writes, so one decoding serves a short and a long reply."""
    cfg = cfg or GenConfig()
    texts = [render_prompt(tokenizer, as_conversation(p)) for p in prompts]
    # similar lengths in a batch mean little left padding
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    replies: list[list[int]] = [[] for _ in texts]
    with _eval_mode(model):
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            batch_on_token = None
            if on_token is not None:
                def batch_on_token(r, piece, idx=idx):
                    on_token(idx[r], piece)
            for i, reply in zip(idx, _generate_batch(model, tokenizer, [texts[i] for i in idx], cfg,
                                                      batch_on_token)):
                replies[i] = reply
    return replies
