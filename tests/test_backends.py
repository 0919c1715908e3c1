"""Any causal LM: the transformers backend computes what the lab's does, and models of other
architectures (Qwen2, Qwen3, GPT-2, built from a config here with the lab's default tokenizer
files: no download) train, generate, score and compare through the CLI and `Session`."""
import json

import pytest
import torch

from lab import models
from lab import train as train_module
from lab.cli import main
from lab.data.dataio import write_jsonl
from lab.generate import GenConfig, generate
from lab.masks import encode
from lab.records import Conversation
from lab.runs import save_model
from lab.session import Session
from lab.train import TrainConfig, train

DATA = [Conversation.single(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a in range(3) for b in range(3)]


def test_backend_argument_and_environment(monkeypatch, tiny, tmp_path):
    from transformers import LlamaForCausalLM

    from lab.engine.llama import LlamaLM

    monkeypatch.setenv("SFT_LAB_BACKEND", "transformers")
    hf, _ = models.load_model("tiny-random")
    assert isinstance(hf, LlamaForCausalLM) and hf.config.name_or_path == "tiny-random"
    assert isinstance(models.load_model("tiny-random", backend="lab")[0], LlamaLM)  # the argument wins
    model, tok = tiny
    save_model(model, tok, tmp_path / "m")
    assert isinstance(models.load_model(str(tmp_path / "m"))[0], LlamaForCausalLM)
    monkeypatch.delenv("SFT_LAB_BACKEND")
    assert isinstance(models.load_model(str(tmp_path / "m"))[0], LlamaLM)  # "lab" by default
    monkeypatch.setenv("SFT_LAB_BACKEND", "tensorflow")
    with pytest.raises(models.ModelError, match="backend must be one of lab, transformers .* not 'tensorflow'"):
        models.load_model("tiny-random")


def test_both_backends_train_the_same_run(monkeypatch):
    """Same weights, data and settings: the same losses step by step, and the same model after."""
    monkeypatch.setattr(train_module, "autocast_dtype", lambda device: None)  # fp32: comparable to 1e-5
    cfg = TrainConfig(max_steps=4, lr=1e-3, batch_size=4, eval_split=0)
    runs = {}
    for backend in models.BACKENDS:
        model, tok = models.load_model("tiny-random", backend=backend)
        result = train(model, tok, DATA, cfg)
        runs[backend] = ([h["loss"] for h in result.history], model.state_dict())
    (lab_losses, lab_weights), (hf_losses, hf_weights) = runs["lab"], runs["transformers"]
    assert lab_losses == pytest.approx(hf_losses, rel=1e-5)
    for name, w in lab_weights.items():
        torch.testing.assert_close(w, hf_weights[name], rtol=1e-4, atol=1e-5)


def build(kind: str, folder, seed: int = 0):
    """A tiny random model of `kind` with the lab's default tokenizer, saved as an HF folder.
    GPT-2's folder has no chat template (as GPT-2 has none): the lab's default one is used."""
    import transformers

    tok = models.load_tokenizer("tiny-random")
    ids = {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
           "pad_token_id": tok.pad_token_id}
    small = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 1024, "tie_word_embeddings": True}
    configs = {"qwen2": lambda: transformers.Qwen2Config(**small, **ids),
               "qwen3": lambda: transformers.Qwen3Config(**small, head_dim=16, **ids),
               "gpt2": lambda: transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=1024, **ids)}
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(configs[kind]())
    if kind == "gpt2":
        tok.chat_template = None
    save_model(model, tok, folder)
    return str(folder)


# Qwen3 (q/k norms) only in the full suite: the same transformers path as Qwen2, 4 s more in test-fast
ARCHITECTURES = ["qwen2", "gpt2"] + ([pytest.param("qwen3", marks=pytest.mark.slow)]
                                     if hasattr(__import__("transformers"), "Qwen3Config") else [])


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_other_architectures_through_the_cli(kind, tmp_path, capsys):
    base = build(kind, tmp_path / kind)
    data = write_jsonl(tmp_path / "d.jsonl", DATA)
    assert main(["train", str(data), "--model", base, "--out", str(tmp_path / "run"), "--max-steps", "3",
                 "--batch-size", "4", "--lr", "3e-3"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["steps"] == 3 and summary["final_loss"] > 0 and summary["eval_loss"] > 0
    tuned = str(tmp_path / "run" / "model")
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["model_type"] == kind

    # sampled (greedy replies of a random model are often empty): the reply, and only it
    sampled = ["--prompt", "What is 1 plus 1?", "--max-new-tokens", "5", "--temperature", "1", "--seed", "1"]
    assert main(["generate", "--model", tuned, *sampled]) == 0
    reply = generate(*models.load_model(tuned), ["What is 1 plus 1?"],
                     GenConfig(max_new_tokens=5, temperature=1.0, seed=1))[0]
    assert reply and capsys.readouterr().out == reply + "\n"
    assert main(["score", "--model", tuned, "--data", str(data)]) == 0
    assert len(json.loads(capsys.readouterr().out)["examples"]) == len(DATA)
    assert main(["compare", "--base", base, "--tuned", tuned, "--prompts", str(data), "--max-new-tokens", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == [c.prompt for c in DATA]


@pytest.mark.slow  # the CLI test above takes each architecture through training in test-fast
@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_other_architectures_through_the_session(kind, tmp_path):
    base = build(kind, tmp_path / kind)
    session = Session(base, runs_dir=tmp_path / "runs")
    if kind == "gpt2":  # no chat template: the documented default (ChatML) renders the chats
        assert session.tokenizer.chat_template is None
        assert session.tokenizer.decode(encode(DATA[0], session.tokenizer).input_ids).startswith("<|im_start|>user\n")
    before = session.score(DATA).mean_nll
    run = session.train(DATA, TrainConfig(max_steps=8, lr=3e-3, batch_size=9, warmup_ratio=0, eval_split=0))
    assert run.result.steps == 8 and session.tuned_differs()
    assert session.score(DATA).mean_nll < before  # it learned the data
    assert session.score(DATA, tuned=False).mean_nll == pytest.approx(before)  # the base is untouched
    rows = session.compare(["What is 1 plus 1?"], GenConfig(max_new_tokens=4))
    assert set(rows[0]) == {"prompt", "base", "tuned"}
    probs = session.token_probabilities(DATA[0])
    assert probs and all(0 < p < 1 for _, p in probs)
    session.reset_to_base()
    assert not session.tuned_differs()
    assert session.load_run(run.out)["name"] == run.name and session.tuned_differs()
