"""Shared fixtures: the tiny random model (built in a second), the real tokenizer, and a tiny
model taught a few replies (greedy tiny-random only writes newlines, so comparisons of its
replies compare empty strings)."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
# `make test` runs two test processes on a 2-core machine: OpenMP threads that spin while they
# wait would take the cores from the other process (torch 3-30x slower); passive ones sleep
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
# the 175 Self-Instruct seed tasks (Apache-2.0, see tests/data/README.md), in every clone
SEED_TASKS = Path(os.environ.get("SFT_LAB_SEED_TASKS") or Path(__file__).parent / "data" / "self_instruct_seed_tasks.jsonl")

# what `taught` learns by heart: distinct replies, so a mixed-up batch row shows
TAUGHT = [("Hi", "Hello! How can I help you today?"), ("What is 2+2?", "Two plus two is four."),
          ("Tell me a long story about a cat and a dog", "A cat and a dog became the best of friends."),
          ("Name a colour.", "Blue is a lovely colour."), ("Say yes.", "Yes, of course."),
          ("Count to three.", "One, two, three.")]


@pytest.fixture(scope="session")
def seed_tasks_path() -> Path:
    """The Self-Instruct seed tasks: tests/data's copy, or `$SFT_LAB_SEED_TASKS`."""
    assert SEED_TASKS.is_file(), f"{SEED_TASKS} is missing (set SFT_LAB_SEED_TASKS to a copy)"
    return SEED_TASKS


@pytest.fixture(scope="session")
def tok():
    from lab.models import load_tokenizer

    return load_tokenizer("tiny-random")


@pytest.fixture()
def tiny():
    """A fresh tiny random model and its tokenizer (fresh: tests train it)."""
    from lab.models import load_model

    return load_model("tiny-random")


@pytest.fixture(params=["lab", "transformers"])
def tiny_both(request):
    """`tiny` on each backend in turn: the same weights in the lab's class and in transformers'
    (for the tests that must hold whichever computes)."""
    from lab.models import load_model

    return load_model("tiny-random", backend=request.param)


@pytest.fixture(scope="session")
def taught(tmp_path_factory):
    """tiny-random trained (60 full-batch steps, fp32 on every CPU, about 5 s) until its greedy
    replies to the TAUGHT prompts are the taught replies, ended by <|im_end|>; to other prompts
    it writes words too (greedy tiny-random writes newlines: every reply is ""). `.path`: the saved HF folder (load a fresh copy per test with
    `load_model(str(taught.path))`); `.pairs`: the (prompt, reply) pairs."""
    import torch

    from lab.masks import IGNORE, encode
    from lab.models import load_model
    from lab.records import Conversation
    from lab.runs import save_model
    from lab.train import TrainConfig, train

    model, tok = load_model("tiny-random")
    data = [Conversation.single(p, r) for p, r in TAUGHT]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SFT_LAB_PRECISION", "fp32")
        train(model, tok, data, TrainConfig(max_steps=60, batch_size=len(data), lr=1e-2, schedule="constant",
                                            warmup_ratio=0, eval_split=0))
    # the premise of every test that uses it, checked without lab.generate (whose tests these
    # are): at each taught position the likeliest next token is the taught one, <|im_end|> included
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    model.eval()
    for conv in data:
        enc = encode(conv, tok)
        with torch.no_grad():
            guess = model(input_ids=torch.tensor([enc.input_ids])).logits[0, :-1].argmax(-1).tolist()
        pairs = [(g, t) for g, t in zip(guess, enc.labels[1:]) if t != IGNORE]
        pairs = pairs[:[t for _, t in pairs].index(im_end) + 1]  # the reply and its end, not the newline after
        assert all(g == t for g, t in pairs), (conv.prompt, tok.decode([g for g, _ in pairs]))
    path = tmp_path_factory.mktemp("taught") / "model"
    save_model(model, tok, path)
    return SimpleNamespace(path=path, pairs=list(TAUGHT))
