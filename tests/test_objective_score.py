"""The objective equals a hand computation from full logits; scoring follows it."""
import math

import pytest
import torch
import torch.nn.functional as F

from lab.masks import IGNORE, collate, encode, shared_prefix
from lab.objective import token_nll
from lab.records import Conversation
from lab.score import score, token_probabilities

CONVS = [Conversation.single("Name a colour.", "Blue."), Conversation.single("2+2?", "4, of course.")]


def hand_nll(model, tok, conv):
    """Per-token NLL of the response from the model's full logits, the slow obvious way."""
    enc = encode(conv, tok)
    with torch.no_grad():
        logits = model(torch.tensor([enc.input_ids])).logits[0]
    out = []
    for t in range(1, len(enc.input_ids)):
        if enc.labels[t] != IGNORE:
            out.append(float(F.cross_entropy(logits[t - 1], torch.tensor(enc.input_ids[t]))))
    return out


def test_token_nll_matches_full_logits(tiny_both):
    model, tok = tiny_both
    batch = collate([encode(c, tok) for c in CONVS], tok.pad_token_id)
    with torch.no_grad():
        nll, rows = token_nll(model, **batch)
    expect = hand_nll(model, tok, CONVS[0]) + hand_nll(model, tok, CONVS[1])
    assert torch.allclose(nll, torch.tensor(expect), atol=1e-4)
    assert rows.tolist() == [0] * len(hand_nll(model, tok, CONVS[0])) + [1] * len(hand_nll(model, tok, CONVS[1]))


def test_a_shared_prefix_runs_once_with_the_same_values(tiny_both):
    """Every templated example starts with the same system prompt: scoring runs it once for the
    batch (on the lab's own models; transformers' models ignore `prefix`) and gets each token's
    NLL as the whole rows give it, long and short rows, bf16 autocast included."""
    model, tok = tiny_both
    convs = CONVS + [Conversation.single("Say something long about the sea. " * 3, "Waves. " * 5)]
    examples = [encode(c, tok) for c in convs]
    prefix = shared_prefix(examples)
    assert prefix == 24 and tok.decode(examples[0].input_ids[:prefix]).endswith("<|im_start|>user\n")
    batch = collate(examples, tok.pad_token_id)
    for dtype in (None, torch.bfloat16):
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            whole, rows = token_nll(model, **batch)
            shared, shared_rows = token_nll(model, **batch, prefix=prefix)
        assert torch.equal(rows, shared_rows)
        torch.testing.assert_close(shared, whole, rtol=1e-5 if dtype is None else 2e-2, atol=1e-5)


def test_a_shared_prefix_trains_with_the_same_gradients(tiny):
    """Training runs the shared system prompt once per micro-batch too: the loss and every
    parameter's gradient (summed back over the rows into the one prefix pass) are those of the
    whole rows, in fp32, with rows of unequal length (right padding) and the in-place gradient
    accumulation the trainer uses."""
    import copy

    model, tok = tiny
    assert hasattr(model, "prefix_kv")  # the lab's own class, where the prefix runs once
    convs = CONVS + [Conversation.single("Say something long about the sea. " * 3, "Waves. " * 5)]
    examples = [encode(c, tok) for c in convs]
    batch = collate(examples, tok.pad_token_id)
    runs = []
    for prefix in (0, shared_prefix(examples)):
        m = copy.deepcopy(model).train()
        nll, _ = token_nll(m, **batch, accumulate=True, prefix=prefix)
        nll.mean().backward()
        runs.append((nll.detach(), {n: p.grad for n, p in m.named_parameters()}))
    (whole, whole_grads), (shared, shared_grads) = runs
    torch.testing.assert_close(shared, whole, rtol=1e-5, atol=1e-6)
    for name, grad in whole_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-4, atol=1e-7, msg=name)


def test_score_equals_hand_computation(tiny_both):
    model, tok = tiny_both
    s = score(model, tok, CONVS, batch_size=1)
    per = [hand_nll(model, tok, c) for c in CONVS]
    assert s.tokens == [len(p) for p in per]
    for got, p in zip(s.per_example, per):
        assert math.isclose(got, sum(p) / len(p), rel_tol=1e-4)
    assert math.isclose(s.mean_nll, sum(map(sum, per)) / sum(map(len, per)), rel_tol=1e-4)
    assert math.isclose(score(model, tok, CONVS, batch_size=2).mean_nll, s.mean_nll, rel_tol=1e-4)


def test_token_probabilities(tiny_both):
    model, tok = tiny_both
    probs = token_probabilities(model, tok, CONVS[0])
    assert [t for t, _ in probs] == ["Blue", ".", "<|im_end|>", "\n"]
    assert all(0 < p < 1 for _, p in probs)
    assert math.isclose(-sum(math.log(p) for _, p in probs) / 4, score(model, tok, CONVS[:1]).mean_nll,
                        rel_tol=1e-4)


@pytest.mark.parametrize("accumulate", [False, True])
def test_gradients_equal_transformers_plain_autograd(tiny, tmp_path, monkeypatch, accumulate):
    """The lab's memory-lean backward (chunked output layer + loss, recomputed SwiGLU) gives the
    gradients of transformers' LlamaForCausalLM with full logits and plain cross-entropy.
    accumulate: the output layer adds into gradients already there, as autograd does."""
    from transformers import AutoModelForCausalLM

    from lab import objective
    from lab.runs import save_model

    monkeypatch.setattr(objective, "CHUNK", 3)  # several chunks, one of them ragged
    model, tok = tiny
    save_model(model, tok, tmp_path / "m")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    model.train(), hf.train()
    if accumulate:  # gradients of an earlier micro-batch
        for p in [*model.parameters(), *hf.parameters()]:
            p.grad = torch.full_like(p, 0.5)
    batch = collate([encode(c, tok) for c in CONVS], tok.pad_token_id)
    nll, _ = token_nll(model, **batch, accumulate=accumulate)
    nll.mean().backward()
    logits = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    ref = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=IGNORE)
    ref.backward()
    assert math.isclose(nll.mean().item(), ref.item(), rel_tol=1e-5)
    theirs = dict(hf.named_parameters())
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, theirs[name].grad, atol=1e-6, rtol=1e-4), \
            (name, (p.grad - theirs[name].grad).abs().max())
