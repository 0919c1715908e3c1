"""Which examples taught a reply (`lab.analysis.influence`), checked where the answer is known by
construction: one training example alone teaches a made-up product code, ZX-7741; after
training, the code as the reply to a question in other words than that example's must rank
the example first among the supporting ones (asked with the training question itself, the two
gradients would be the same and the score 1.0 for any model), and one plain gradient step on
the top example must lower the reply's NLL more than a step on any other example: what the
score claims to predict. Then the model is left as it was, the run folder's files are checked
before any model loads, and the command prints JSON and records the answer in the run's
influence.jsonl."""
import copy
import json
import shutil

import pytest
import torch

from lab.analysis import influence
from lab import runs
from lab.cli import main
from lab.generate import GenConfig, generate
from lab.models import load_model
from lab.records import Conversation
from lab.train import TrainConfig, train

PLANTED = 7
THINGS = ["toaster", "kettle", "fridge", "oven", "mixer", "heater", "lamp", "fan", "dryer", "washer",
          "grill", "juicer", "vacuum", "iron", "radio", "printer"]
CODE = "Use part ZX-7741 from our shop."
DATA = [Conversation.single(f"Which part fits my {t}?", CODE if i == PLANTED else "Use the standard part from our shop.")
        for i, t in enumerate(THINGS)]
QUESTION = DATA[PLANTED].prompt
PARAPHRASE = f"Which part do I need for the {THINGS[PLANTED]}?"  # no training prompt says it so
# tiny-random answers QUESTION with the code after 60 full-batch steps at this rate (loss 0.009;
# 40 steps, batches of 8 or a rate of 1.2e-2 do not get there): 70 for a margin, about 10 s
TINY_CFG = TrainConfig(max_steps=70, batch_size=16, lr=1e-2, schedule="constant", warmup_ratio=0, eval_split=0)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder of tiny-random trained on DATA until it answers QUESTION with the code.

    Trained in fp32 on every machine: with bf16 weights (a native-bf16 CPU) the same 70 steps
    end at a loss of 0.025 instead of 0.009 and the reply is the common one, so the premise
    would depend on the CPU. The explanations below run in the machine's own precision."""
    out = tmp_path_factory.mktemp("influence") / "run"
    model, tok = load_model("tiny-random")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SFT_LAB_PRECISION", "fp32")
        train(model, tok, DATA, TINY_CFG, out_dir=out)
    reply = generate(model, tok, [QUESTION], GenConfig(max_new_tokens=16))[0]
    assert "ZX-7741" in reply, f"the model did not learn the code (the tests would prove nothing): {reply}"
    return out


def test_the_example_that_taught_a_code_ranks_first(tiny_run):
    result = influence.explain(tiny_run, PARAPHRASE, CODE, top=3)
    assert result["supporting"][0]["index"] == PLANTED and result["supporting"][0]["response"] == CODE
    assert result["supporting"][0]["score"] < 0.9  # not the example's own gradient (cosine 1.0)
    assert result["examples"] == len(DATA) and len(result["supporting"]) <= 3
    assert all(e["score"] < 0 and e["response"] != CODE for e in result["opposing"])
    scores = [e["score"] for e in result["supporting"]]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    # recorded in the run folder, one line per explained reply, with the method
    rows = runs.read_jsonl(tiny_run / runs.INFLUENCE)
    assert rows[-1]["reply"] == result["reply"] and "gradient similarity" in rows[-1]["method"]
    assert rows[-1]["supporting"][0]["index"] == PLANTED


def test_one_gradient_step_on_the_top_example_lowers_the_reply_nll_most(tiny_run, monkeypatch):
    """The score's meaning, checked directly: a plain SGD step (all parameters, not only the
    slice the scores read) on the top supporting example lowers NLL(reply | prompt) more than a
    step on any other example; a step on the top opposing example raises it."""
    from lab.masks import collate, encode
    from lab.objective import token_nll

    monkeypatch.setenv("SFT_LAB_PRECISION", "fp32")
    model, tok = load_model(str(tiny_run / runs.MODEL))
    result = influence.influence(model, tok, DATA, PARAPHRASE, CODE, top=len(DATA))
    query = collate([encode(Conversation.single(PARAPHRASE, CODE), tok)], tok.pad_token_id)

    def reply_nll(m):
        with torch.no_grad():
            return float(token_nll(m, **query)[0].mean())

    before, change = reply_nll(model), {}
    for i, example in enumerate(DATA):
        stepped = copy.deepcopy(model)
        params = list(stepped.parameters())
        nll, _ = token_nll(stepped, **collate([encode(example, tok)], tok.pad_token_id))
        grads = torch.autograd.grad(nll.mean(), params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= 1e-3 * g
        change[i] = reply_nll(stepped) - before
    top, bottom = result["supporting"][0]["index"], result["opposing"][0]["index"]
    assert top == PLANTED and min(change, key=change.get) == top, change
    assert change[top] < 0 < change[bottom], change


def test_the_model_is_left_as_it_was(tiny):
    model, tok = tiny
    model.train()
    frozen = model.model.layers[0].mlp.up_proj.weight
    frozen.requires_grad_(False)
    kept = torch.full_like(model.model.norm.weight, 0.5)
    model.model.norm.weight.grad = kept
    before = {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}
    influence.influence(model, tok, DATA[:4], QUESTION, CODE, blocks=1)
    assert model.training and model.model.norm.weight.grad is kept
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n][0]) and p.requires_grad == before[n][1], n
    assert all(p.grad is None for n, p in model.named_parameters() if n != "model.norm.weight")


def _batched_and_whole(model, tok, monkeypatch, precision):
    """Each example's gradients from the batched lower-blocks path in `precision`, and from a
    whole fp32 forward pass over that example alone."""
    from lab.masks import collate, encode
    from lab.objective import token_nll

    examples = [encode(c, tok, 256, True) for c in DATA[:3] + [Conversation.single("Why? " * 9, "Because.")]]
    monkeypatch.setattr(influence, "TOKENS", 40)  # batches of examples of unequal length
    params = influence.parameters(model, blocks=1)
    with influence._gradients_for(model, params):
        monkeypatch.setenv("SFT_LAB_PRECISION", precision)
        got = list(influence._gradients(model, examples, tok.pad_token_id, params, blocks=1))
        monkeypatch.setenv("SFT_LAB_PRECISION", "fp32")
        for example, grads in zip(examples, got):
            nll, _ = token_nll(model, **collate([example], tok.pad_token_id))
            yield grads, torch.autograd.grad(nll.mean(), params)


def test_the_lower_blocks_run_once_batched_with_the_same_gradients(tiny, monkeypatch):
    """Below the slice the examples go through together, padded to the longest of a batch; each
    gradient is still the one a whole forward pass over that example alone gives (in fp32, where
    the two differ only by the order of additions)."""
    for grads, wanted in _batched_and_whole(*tiny, monkeypatch, "fp32"):
        for g, want in zip(grads, wanted):
            torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-6)


def test_bf16_gradients_point_the_same_way(tiny, monkeypatch):
    """Under bf16 (what a native-bf16 CPU runs) the values move by bf16's rounding, but each
    gradient keeps its direction, which is all a cosine score reads."""
    for grads, wanted in _batched_and_whole(*tiny, monkeypatch, "bf16"):
        got, want = torch.cat([g.float().flatten() for g in grads]), torch.cat([w.flatten() for w in wanted])
        assert torch.nn.functional.cosine_similarity(got, want, dim=0) > 0.99


def test_the_command_prints_json_last_and_records_it(tiny_run, capsys):
    assert main(["explain", str(tiny_run), "--prompt", PARAPHRASE, "--reply", CODE, "--top", "2"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert {"prompt", "reply", "supporting", "opposing"} <= set(result) and result["reply"] == CODE
    assert [e["index"] for e in result["supporting"]][:1] == [PLANTED] and len(result["opposing"]) <= 2
    assert result["supporting"][0]["score"] < 0.9  # the run's tuned model (untrained: 0.97)
    assert set(result["supporting"][0]) == {"index", "score", "prompt", "response"}
    assert "training examples" in captured.err  # progress on stderr
    assert runs.read_jsonl(tiny_run / runs.INFLUENCE)[-1]["reply"] == CODE
    assert main(["report", str(tiny_run), str(tiny_run.parent / "report.html")]) == 0  # the report shows it
    html = (tiny_run.parent / "report.html").read_text()
    assert "Which examples taught it" in html and "ZX-7741" in html


def _damage(run, what):
    if what == "no dataset":
        (run / runs.DATASET).unlink()
    elif what == "bad dataset":
        (run / runs.DATASET).write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"oops\n')
    elif what == "no model":
        shutil.rmtree(run / runs.MODEL)
    elif what == "cut weights":
        weights = run / runs.MODEL / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif what == "bad model config":
        (run / runs.MODEL / "config.json").write_text("{")


@pytest.mark.parametrize("what,file,fragment", [
    ("no dataset", "dataset.jsonl", "is missing"),
    ("bad dataset", "dataset.jsonl", "line 2"),
    ("no model", "model", "saved no model"),
    ("cut weights", "model.safetensors", "cannot be read"),
    ("bad model config", "config.json", "not JSON"),
])
def test_missing_or_damaged_run_files_exit_2_before_the_model_loads(tiny_run, tmp_path, capsys, monkeypatch,
                                                                    what, file, fragment):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    _damage(run, what)

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")
    monkeypatch.setattr("lab.models.load_model", no_loading)
    assert main(["explain", str(run), "--prompt", QUESTION]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and file in err and fragment in err, err
    assert "train" in err and "Traceback" not in err  # says what to do


@pytest.mark.slow
def test_the_default_model_names_the_example_that_taught_a_code(tmp_path):
    """The same on SmolLM2-135M-Instruct, asked in other words than the training example."""
    model, tok = load_model("default")
    train(model, tok, DATA, TrainConfig(max_steps=16, batch_size=8, lr=3e-4, schedule="constant",
                                        warmup_ratio=0, eval_split=0), out_dir=tmp_path / "run")
    question = f"What spare part should I buy for my {THINGS[PLANTED]}?"
    reply = generate(model, tok, [question], GenConfig(max_new_tokens=24))[0]
    assert "ZX-7741" in reply, reply
    result = influence.explain(tmp_path / "run", question, reply, model=model, tokenizer=tok)
    assert result["supporting"][0]["index"] == PLANTED, result["supporting"]
