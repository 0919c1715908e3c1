"""GGUF export: a run's model round-trips through transformers' GGUF loader (the path the lab
prepares the default model by) with the same logits, and the chat template read back from the
file renders the very prompt tokens the run trained on."""
import json

import numpy as np
import pytest
import torch

from lab.cli import main
from lab.data.dataio import read_dataset
from lab.export.gguf import export_gguf, modelfile
from lab.masks import IGNORE, encode
from lab.records import Conversation
from lab.train import TrainConfig, train

DATA = [Conversation.single(f"What is {a} + {b}?", f"{a + b}.", system="Be brief." if a % 2 else None)
        for a, b in ((1, 2), (12, 30), (7, 5), (100, 1))]


@pytest.fixture()
def run(tiny, tmp_path):
    model, tok = tiny
    train(model, tok, DATA, TrainConfig(max_steps=1, batch_size=2, eval_split=0), out_dir=tmp_path / "run")
    return model, tok, tmp_path / "run"


@pytest.mark.slow  # transformers' GGUF loader de-quantises in Python: about 15 s
def test_round_trip_through_transformers_gguf_loader(run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok, folder = run
    gguf_path, modelfile_path = export_gguf(folder, tmp_path / "out")  # f16, the default
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Modelfile", "model.gguf"]

    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name).eval()
    ids = torch.tensor([tok("The capital of France is Paris, and 12 + 30 = 42.")["input_ids"]])
    with torch.no_grad():
        want, got = model(ids).logits, loaded(ids).logits.float()
    assert (want - got).abs().max() < 2e-3 * want.abs().max()  # f16 weights

    # the template in the file renders exactly the prompts (and conversations) the run trained on
    gguf_tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    trained = read_dataset(folder / "dataset.jsonl")
    assert len(trained) == len(DATA)
    for conv in trained:
        enc = encode(conv, tok)
        prompt_len = next(i for i, label in enumerate(enc.labels) if label != IGNORE)
        prompt = gguf_tok.apply_chat_template(conv.prompt_only().messages(), add_generation_prompt=True,
                                              return_dict=True)["input_ids"]
        assert prompt == enc.input_ids[:prompt_len]
        assert gguf_tok.apply_chat_template(conv.messages(), return_dict=True)["input_ids"] == enc.input_ids


@pytest.mark.slow  # gguf's reader parses the 49k-token vocabulary in Python: about 5 s
def test_f32_weights_are_stored_exactly_in_llama_cpp_layout(run, tmp_path):
    from gguf import GGUFReader

    model, _, folder = run
    reader = GGUFReader(export_gguf(folder, tmp_path / "out", dtype="f32")[0])
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    assert "output.weight" not in tensors  # tied to the token embedding, stored once
    embed = model.state_dict()["model.embed_tokens.weight"].numpy()
    assert np.array_equal(tensors["token_embd.weight"], embed)
    q = model.state_dict()["model.layers.0.self_attn.q_proj.weight"].numpy()  # 4 heads of 16 rows
    half = q.reshape(4, 2, 8, -1)
    assert np.array_equal(tensors["blk.0.attn_q.weight"].reshape(4, 8, 2, -1), half.transpose(0, 2, 1, 3))
    field = reader.fields["tokenizer.ggml.pre"]
    assert bytes(field.parts[field.data[0]]).decode() == "gpt2"  # the lab's tokenizer splits like GPT-2


def test_modelfile_is_chatml_with_the_default_system_prompt(tok):
    text = modelfile(tok, "model.gguf")
    assert text == (
        "# Ollama: ollama create NAME -f Modelfile, then: ollama run NAME\n"
        "FROM ./model.gguf\n"
        'TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
        '{{ end }}<|im_start|>assistant\n"""\n'
        'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""\n'
        'PARAMETER stop "<|im_end|>"\n')


def test_modelfile_for_other_templates_leaves_the_template_to_the_gguf(tok, monkeypatch):
    monkeypatch.setattr(tok, "chat_template", "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n"
                                              "{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}")
    text = modelfile(tok, "model.gguf")
    assert "TEMPLATE" not in text and "Ollama reads it from the GGUF" in text
    assert text.endswith('PARAMETER stop "<|im_end|>"\n')


def test_cli_export_gguf_and_its_errors(run, tmp_path, capsys):
    _, _, folder = run
    assert main(["export-gguf", str(folder), str(tmp_path / "out"), "--dtype", "f32"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "model.gguf")
    assert main(["export-gguf", str(tmp_path / "nothing"), str(tmp_path / "o2")]) == 2
    assert "is neither a run folder with a saved model" in capsys.readouterr().err
    config = json.loads((folder / "model" / "config.json").read_text())
    (folder / "model" / "config.json").write_text(json.dumps({**config, "model_type": "qwen2"}))
    assert main(["export-gguf", str(folder), str(tmp_path / "o3")]) == 2
    assert "export-gguf writes Llama-architecture models" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


@pytest.mark.slow
def test_default_model_round_trip(tmp_path):
    """The real model: 9 query heads over 3 key/value heads, 30 layers, SmolLM2's tokenizer."""
    from transformers import AutoModelForCausalLM

    from lab import models

    if not models.is_prepared(models.default_model_dir()):
        pytest.skip("default model not prepared (run `sft-lab fetch-model default`)")
    model, tok = models.load_model("default")
    gguf_path, _ = export_gguf(models.default_model_dir(), tmp_path / "out")
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name).eval()
    ids = torch.tensor([tok("The capital of France is Paris, and 12 + 30 = 42.")["input_ids"]])
    with torch.no_grad():
        want, got = model(ids).logits, loaded(ids).logits.float()
    assert (want - got).abs().max() < 2e-2 * want.abs().max()  # f16 weights through 30 layers
    assert (want.argmax(-1) == got.argmax(-1)).float().mean() > 0.9
