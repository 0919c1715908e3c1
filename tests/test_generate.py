"""Generation: batching with left padding changes nothing; seeds reproduce; streaming adds up;
decoding stops at the end of turn.

Greedy tiny-random writes only newlines (every reply is ""), so the greedy tests run on `taught`
(conftest.py): tiny-random that learnt six replies by heart and writes words to other prompts."""
import pytest
import torch

from lab import generate as generate_module
from lab.generate import continue_text, GenConfig, generate, stop_ids
from lab.masks import render_prompt
from lab.models import load_model
from lab.records import Conversation, Turn

PROMPTS = ["Hi", "Tell me a long story about a cat and a dog", "What is 2+2?"]


@pytest.fixture(params=["lab", "transformers"])
def taught_both(request, taught):
    """A fresh copy of `taught` on each backend in turn."""
    return load_model(str(taught.path), backend=request.param)


def test_batched_equals_one_by_one(taught_both, taught):
    model, tok = taught_both
    cfg = GenConfig(max_new_tokens=12)
    prompts = PROMPTS + ["Tell me about a dragon."]  # taught, and one it never saw
    together = generate(model, tok, prompts, cfg)
    alone = [generate(model, tok, [p], cfg)[0] for p in prompts]
    assert together == alone
    # each row got its own reply (rows of different lengths, finishing at different steps)
    wanted = dict(taught.pairs)
    assert together[:3] == [wanted[p][:len(together[i])] for i, p in enumerate(PROMPTS)]
    assert len(set(together)) == 4 and all(together), together


def test_matches_hf_generate_greedy(taught, tmp_path):
    """Batched, left-padded, cached decoding gives what transformers' generate gives for each
    prompt alone, on the same weights."""
    from transformers import AutoModelForCausalLM

    model, tok = load_model(str(taught.path))
    hf = AutoModelForCausalLM.from_pretrained(taught.path).eval()
    prompts = ["Hi", "Tell me a long story about a dragon and a knight.", "2+2?"]
    expect = []
    for p in prompts:
        ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        out = hf.generate(**ids, max_new_tokens=10, do_sample=False, eos_token_id=sorted(stop_ids(model, tok)))
        expect.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    assert all(expect), expect  # words, not the empty replies of an untrained model
    assert generate(model, tok, prompts, GenConfig(max_new_tokens=10)) == expect
    raw = tok("The capital of France", return_tensors="pt", add_special_tokens=False)
    out = hf.generate(**raw, max_new_tokens=10, do_sample=False, eos_token_id=sorted(stop_ids(model, tok)))
    expect = tok.decode(out[0, raw["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert expect and continue_text(model, tok, "The capital of France", GenConfig(max_new_tokens=10)) == expect


def test_sampling_is_seeded(tiny_both):
    model, tok = tiny_both
    a = generate(model, tok, PROMPTS, GenConfig(max_new_tokens=8, temperature=1.0, seed=3))
    b = generate(model, tok, PROMPTS, GenConfig(max_new_tokens=8, temperature=1.0, seed=3))
    c = generate(model, tok, PROMPTS, GenConfig(max_new_tokens=8, temperature=1.0, seed=4))
    assert all(a) and a == b and a != c


def test_streaming_pieces_add_up_to_the_reply(taught_both):
    model, tok = taught_both
    pieces = {}
    prompts = PROMPTS + ["Tell me about a dragon."]
    replies = generate(model, tok, prompts, GenConfig(max_new_tokens=8),
                       on_token=lambda i, text: pieces.__setitem__(i, pieces.get(i, "") + text))
    assert all(replies) and [pieces.get(i, "").strip() for i in range(4)] == replies


def test_decoding_stops_at_the_end_of_turn(taught, monkeypatch):
    """The taught reply ends with <|im_end|>: decoding stops there (one forward pass per reply
    token and one for the end), not at max_new_tokens; without the stop ids it runs to the limit."""
    model, tok = load_model(str(taught.path))
    prompt, reply = taught.pairs[4]
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    assert generate(model, tok, [prompt], GenConfig(max_new_tokens=40)) == [reply]
    assert len(calls) == len(tok(reply, add_special_tokens=False)["input_ids"]) + 1 < 40
    # the token that ended it is the end-of-turn token
    ids = tok(render_prompt(tok, Conversation.single(prompt)) + reply, add_special_tokens=False,
              return_tensors="pt")["input_ids"]
    with torch.no_grad():
        nxt = int(forward(input_ids=ids).logits[0, -1].argmax())
    assert nxt == tok.convert_tokens_to_ids("<|im_end|>") and nxt in stop_ids(model, tok)

    calls.clear()
    monkeypatch.setattr(generate_module, "stop_ids", lambda model, tokenizer: set())
    assert generate(model, tok, [prompt], GenConfig(max_new_tokens=40))[0].startswith(reply)
    assert len(calls) == 40


def test_multi_turn_prompt_and_stop_tokens(taught):
    """A conversation is answered as a whole: the reply is the continuation of the whole chat
    rendered with the template, not of its last user turn."""
    model, tok = load_model(str(taught.path))
    conv = Conversation((Turn("user", "Say yes."), Turn("assistant", "Yes, of course."),
                         Turn("user", "Tell me about a dragon.")))
    cfg = GenConfig(max_new_tokens=8)
    [reply] = generate(model, tok, [conv], cfg)
    assert reply and reply == continue_text(model, tok, render_prompt(tok, conv), cfg)
    assert reply != generate(model, tok, ["Tell me about a dragon."], cfg)[0]  # the earlier turns count
    assert tok.convert_tokens_to_ids("<|im_end|>") in stop_ids(model, tok)
