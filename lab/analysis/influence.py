"""Which training examples taught a reply: gradient similarity at the final weights.

For a prompt and a reply, each training example i of a run gets the score

    score_i = cos(g_i, g_reply)     g_i = grad of example i's training loss
                                    g_reply = grad of the reply's NLL given the prompt

both gradients taken at the run's final weights, over a slice of the parameters: the last
`BLOCKS` transformer blocks and the final norm (`parameters`). Example i's loss is its mean NLL
over the tokens training put loss on (the same mask). One gradient step on example i changes
the reply's NLL by about -lr * <g_i, g_reply>, so a positive score means that training on i, at
these weights, makes the reply more likely ("supporting"), a negative one less likely
("opposing"). This is TracIn (Pruthi et al., 2020) at one checkpoint, normalised (cosine).

What the score does not mean:
- it is measured at the end of the run only (TracIn sums over checkpoints along the way): an
  example the model has learnt by heart has a small gradient now, whatever it did earlier; the
  cosine keeps its direction, not its size;
- plain gradients: AdamW's per-parameter scaling, the learning rate and clipping are left out;
- a slice of the parameters, not all of them (tests/test_influence.py checks that it ranks a
  planted example first);
- a direction, not an amount: it ranks examples; 0.6 against 0.2 is not "three times the effect";
- a correlation of gradients, not a counterfactual: it does not say the reply would be different
  without the example (only training again without it says that).

Each example's gradient is taken on its own, through the slice only (`_gradients`); the blocks
below it run once, batched, with no graph.
"""
from __future__ import annotations

import json
import math
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from .. import runs
from ..config import TrainConfig
from ..engine.device import autocast
from ..generate import GenConfig, as_conversation, generate
from ..batching import split_by_tokens
from ..masks import Encoded, collate, encode
from ..objective import hidden_nll, token_nll
from ..records import Conversation, DataError, Record

BLOCKS = 2  # transformer blocks (the last ones) whose parameters the gradients are taken over
NOTE = ("Gradient similarity at the final weights (TracIn-style, one checkpoint, a slice of the "
        "parameters): it ranks the examples whose training pushes the model the way this reply "
        "does, or against it; an estimate, not what training without an example would change.")

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def parameters(model, blocks: int = BLOCKS) -> list[torch.nn.Parameter]:
    """The last `blocks` transformer blocks' parameters (names with a layer number, e.g.
    `model.layers.29.mlp.up_proj.weight`) and the 1-D parameters outside the blocks (the final
    norm): where the gradients are compared. Embeddings and the output layer are left out.

    >>> from lab.models import load_model
    >>> model, _ = load_model("tiny-random")  # 2 blocks
    >>> [n for n, p in model.named_parameters() if any(p is q for q in parameters(model, blocks=1))]
    ['model.layers.1.self_attn.q_proj.weight', ..., 'model.layers.1.post_attention_layernorm.weight', 'model.norm.weight']
    """
    named = list(model.named_parameters())
    block = {n: int(m.group(1)) for n, _ in named if (m := re.search(r"\.(\d+)\.", n))}
    if not block:
        raise ValueError("cannot find the model's transformer blocks (no parameter name with a layer number)")
    last = max(block.values())
    return [p for n, p in named if (block[n] > last - blocks if n in block else p.ndim == 1)]


def method(model, blocks: int = BLOCKS) -> str:
    """The approximation, in words, as results record it."""
    n = sum(p.numel() for p in parameters(model, blocks))
    return (f"TracIn-style gradient similarity (cosine) at the final weights, over the last {blocks} "
            f"blocks and the final norm ({n:,} parameters); one checkpoint, optimiser left out")


@contextmanager
def _gradients_for(model, params: list[torch.nn.Parameter]):
    """Within the block: eval mode (no dropout), gradients for `params` only, no `.grad` stored.
    Afterwards the model's mode, `requires_grad` flags and `.grad` are as before; its weights are
    never written."""
    state = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    chosen = {id(p) for p in params}
    was_training = model.training
    try:
        model.eval()
        for p, _, _ in state:
            p.requires_grad_(id(p) in chosen)
            p.grad = None  # a stored gradient would switch the lab's layers to in-place accumulation
        yield
    finally:
        for p, flag, grad in state:
            p.requires_grad_(flag)
            p.grad = grad
        model.train(was_training)


TOKENS = 4096  # padded tokens per batch of the lower blocks' pass


def _lower_states(model, examples: list[Encoded], pad_id: int, split: int) -> list[torch.Tensor]:
    """Each example's hidden state entering block `split` (T_i, H), from the lower blocks run
    once, no graph, over batches of examples of similar length (right padding: the real tokens
    never attend to it, so each state is the example's own). None of the slice's parameters is
    below `split`, so its gradients need nothing from there but these states."""
    device = next(model.parameters()).device
    states: dict[int, torch.Tensor] = {}  # by id() of the example
    with torch.no_grad(), autocast(device):
        for batch in split_by_tokens(examples, TOKENS):
            inputs = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
            x = model.base_model(inputs["input_ids"], inputs["attention_mask"],
                                 layers=slice(0, split)).hidden_state
            for row, e in enumerate(batch):
                states[id(e)] = x[row, :len(e.input_ids)].clone()
    return [states[id(e)] for e in examples]


def _gradients(model, examples: list[Encoded], pad_id: int, params, blocks: int):
    """Yield d (mean NLL of each example's trained tokens) / d params, in order.

    The lab's own Llama models run the blocks below the slice once for all examples
    (`_lower_states`) and only the slice per example; other models run whole, one example at a
    time. Per-example gradients out of one batched backward pass would need torch.func's vmap,
    which the lab's fused autograd functions do not support."""
    from ..engine.llama import Decoder

    device = next(model.parameters()).device
    decoder = model.base_model
    split = len(decoder.layers) - blocks if isinstance(decoder, Decoder) else 0
    states = _lower_states(model, examples, pad_id, split) if split > 0 else [None] * len(examples)
    for example, state in zip(examples, states):
        batch = {k: v.to(device) for k, v in collate([example], pad_id).items()}
        with autocast(device):
            if state is None:
                nll, _ = token_nll(model, **batch)          # (N,) one value per trained token
            else:
                hidden = decoder(batch["input_ids"], batch["attention_mask"], layers=slice(split, None),
                                 hidden=state[None]).last_hidden_state
                nll, _ = hidden_nll(model, hidden, batch["labels"])
        yield torch.autograd.grad(nll.float().mean(), params)


def _texts(record: Record) -> tuple[str, str]:
    """(instruction, response) of a record, for a person; plain text has no instruction."""
    if isinstance(record, Conversation):
        return record.prompt, record.response or ""
    return "", record.text


def influence(model, tokenizer, data: list[Record], prompt: str | Conversation, reply: str, *,
              top: int = 5, blocks: int = BLOCKS, max_length: int | None = 256,
              completion_only: bool = True, on_progress: Progress | None = None) -> dict:
    """Rank `data` by how much each example pushed `reply` to `prompt` up or down (module doc).

    `max_length`, `completion_only`: as the run trained (its `TrainConfig`), so each example's
    loss is the one training saw. Returns {"prompt", "reply", "method", "examples" (how many
    were scored), "supporting", "opposing"}, each list up to `top` entries {"index" (0-based,
    in `data`), "score", "prompt", "response"}, strongest first."""
    conv = as_conversation(prompt).with_response(reply)
    params = parameters(model, blocks)
    encoded = [(i, encode(r, tokenizer, max_length, completion_only)) for i, r in enumerate(data)
               if r.is_trainable]
    encoded = [(i, e) for i, e in encoded if e.n_trained]  # nothing trained: no gradient
    say = on_progress or (lambda stage, done, total: None)
    scores: dict[int, float] = {}
    with _gradients_for(model, params):
        say("gradients", 0, len(encoded))
        stream = _gradients(model, [encode(conv, tokenizer)] + [e for _, e in encoded],
                            tokenizer.pad_token_id, params, blocks)
        query = next(stream)
        query_norm = math.sqrt(sum(float(g.square().sum()) for g in query))
        for done, ((i, _), grads) in enumerate(zip(encoded, stream)):
            say("gradients", done, len(encoded))
            dot = sum(float((g * q).sum()) for g, q in zip(grads, query))
            norm = math.sqrt(sum(float(g.square().sum()) for g in grads))
            scores[i] = dot / (norm * query_norm) if norm and query_norm else 0.0
    say("gradients", len(encoded), len(encoded))
    ranked = sorted(scores, key=scores.get, reverse=True)

    def entry(i: int) -> dict:
        instruction, response = _texts(data[i])
        return {"index": i, "score": round(scores[i], 4), "prompt": instruction, "response": response}

    return {"prompt": conv.prompt, "reply": reply, "method": method(model, blocks), "examples": len(scores),
            "supporting": [entry(i) for i in ranked if scores[i] > 0][:top],
            "opposing": [entry(i) for i in reversed(ranked) if scores[i] < 0][:top]}


def read_run(run: str | Path, *, model: bool = True) -> tuple[list[Record], TrainConfig]:
    """A run's training examples (`dataset.jsonl`, in order) and settings, checked before any
    model loads; with `model`, its saved model is checked too (present, readable headers).
    Anything missing or damaged raises `DataError` naming the file and what to do."""
    from ..data.dataio import read_dataset

    folder = Path(run)
    try:
        config = json.loads((folder / runs.CONFIG).read_text())
    except (OSError, ValueError):
        raise DataError("is not a run folder with readable settings (config.json); give a folder "
                        "that `sft-lab train` wrote (`sft-lab runs` lists them)", source=str(folder)) from None
    path = folder / runs.DATASET
    if not path.is_file():
        raise DataError("is missing: the run kept no copy of its training examples, so there is "
                        "nothing to rank; train the run again to write one", source=str(path))
    try:
        data = read_dataset(path)
    except DataError as err:
        raise DataError(f"{err.message}; the run's copy of its training examples is damaged: "
                        "train the run again", source=err.source, where=err.where) from None
    if not any(r.is_trainable for r in data):
        raise DataError("holds no example with a reply to rank; train the run again",
                        source=str(path))
    if model:
        _check_model(folder / runs.MODEL)
    return data, TrainConfig.from_json(config)


def _check_model(model_dir: Path) -> None:
    """Raise `DataError` when a run's model folder is missing or its files cannot be read."""
    from safetensors import safe_open

    again = "the run's saved model is damaged; train the run again"
    if not model_dir.is_dir():
        raise DataError("is missing: the run saved no model (it was interrupted, or stopped before "
                        "its first step); train it again", source=str(model_dir))
    try:
        json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        raise DataError(f"is missing or not JSON: {again}", source=str(model_dir / "config.json")) from None
    weights = sorted(model_dir.glob("*.safetensors"))
    if not weights:
        raise DataError(f"holds no weights (no .safetensors file): {again}", source=str(model_dir))
    for w in weights:
        try:
            with safe_open(str(w), "pt"):
                pass
        except Exception as err:  # safetensors' errors for a cut or foreign file, in one line
            raise DataError(f"cannot be read ({str(err).splitlines()[0]}): {again}", source=str(w)) from None


def explain(run: str | Path, prompt: str | Conversation, reply: str | None = None, top: int = 5, *,
            model=None, tokenizer=None, blocks: int = BLOCKS, max_new_tokens: int = 128,
            on_progress: Progress | None = None) -> dict:
    """Which of the run's training examples pushed `reply` (else the tuned model's greedy reply)
    to `prompt` up or down: `influence` on the run's `dataset.jsonl` with its saved model (or
    `model`/`tokenizer`, the same weights already loaded). The result is also appended to the
    run's `influence.jsonl`. In a notebook: `explain("runs/my-run", "Which part fits my fan?")`.
    """
    from ..models import load_model

    folder = Path(run)
    data, cfg = read_run(folder, model=model is None)
    say = on_progress or (lambda stage, done, total: None)
    if model is None:
        say("loading the model", 0, 1)
        model, tokenizer = load_model(str(folder / runs.MODEL))
    if reply is None:
        say("replying", 0, 1)
        reply = generate(model, tokenizer, [prompt], GenConfig(max_new_tokens=max_new_tokens))[0]
    result = influence(model, tokenizer, data, prompt, reply, top=top, blocks=blocks,
                       max_length=cfg.max_length, completion_only=cfg.completion_only, on_progress=say)
    result["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    runs.record_influence(folder, result)
    return result
