"""The lab's light tokenizer gives what transformers' tokenizer gives for the same folder."""
import pytest
from transformers import AutoTokenizer

from lab.data import starters
from lab.engine import tokenizer
from lab.data.dataio import read_dataset
from lab.masks import DEFAULT_TEMPLATE, encode, render
from lab.models import default_model_dir


@pytest.fixture(scope="module")
def pair(tok):
    assert isinstance(tok, tokenizer.Tokenizer)
    return tok, AutoTokenizer.from_pretrained(default_model_dir())


def conversations(seed_tasks_path):
    convs = [c for name in starters.names() for c in starters.load(name)]
    return convs + read_dataset(seed_tasks_path)[:40]


def test_special_tokens_and_vocabulary_agree(pair):
    lab_tok, hf_tok = pair
    for attr in ("bos_token", "eos_token", "unk_token", "bos_token_id", "eos_token_id",
                 "unk_token_id", "chat_template"):
        assert getattr(lab_tok, attr) == getattr(hf_tok, attr), attr
    assert len(lab_tok) == len(hf_tok)
    assert lab_tok.convert_tokens_to_ids("<|im_end|>") == hf_tok.convert_tokens_to_ids("<|im_end|>")
    assert lab_tok.convert_tokens_to_ids("no-such-token") == hf_tok.convert_tokens_to_ids("no-such-token")


def test_rendering_encoding_and_decoding_agree_on_real_data(pair, seed_tasks_path):
    lab_tok, hf_tok = pair
    convs = conversations(seed_tasks_path)
    assert len(convs) > 100
    for conv in convs:
        msgs = conv.messages()
        for gen in (False, True):
            assert render(lab_tok, msgs, gen) == render(hf_tok, msgs, gen)
            assert (lab_tok.apply_chat_template(msgs, chat_template=DEFAULT_TEMPLATE, tokenize=False,
                                                add_generation_prompt=gen)
                    == hf_tok.apply_chat_template(msgs, chat_template=DEFAULT_TEMPLATE, tokenize=False,
                                                  add_generation_prompt=gen))
        assert encode(conv, lab_tok).input_ids == encode(conv, hf_tok).input_ids
        ids = lab_tok.apply_chat_template(msgs)
        assert ids == hf_tok.apply_chat_template(msgs, return_dict=False)
        for skip in (False, True):
            assert lab_tok.decode(ids, skip_special_tokens=skip) == hf_tok.decode(ids, skip_special_tokens=skip)
        text = conv.response or conv.prompt
        for special in (False, True):
            assert lab_tok(text, add_special_tokens=special)["input_ids"] == \
                hf_tok(text, add_special_tokens=special)["input_ids"]


def test_tensors_and_dicts_as_transformers_returns_them(pair):
    lab_tok, hf_tok = pair
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    a = lab_tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    b = hf_tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert a["input_ids"].tolist() == b["input_ids"].tolist() and a["input_ids"].dim() == 2
    assert a["attention_mask"].tolist() == b["attention_mask"].tolist()
    assert lab_tok("Hello", return_tensors="pt")["input_ids"].tolist() == \
        hf_tok("Hello", return_tensors="pt")["input_ids"].tolist()
    assert lab_tok.convert_ids_to_tokens(a["input_ids"][0].tolist()) == \
        hf_tok.convert_ids_to_tokens(b["input_ids"][0].tolist())


def test_saved_folder_loads_in_transformers_and_here(pair, tmp_path):
    lab_tok, hf_tok = pair
    lab_tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer.handles(tmp_path)
    mine = tokenizer.Tokenizer(tmp_path)
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    assert again.apply_chat_template(msgs, tokenize=False) == mine.apply_chat_template(msgs, tokenize=False) \
        == hf_tok.apply_chat_template(msgs, tokenize=False)
    assert again.eos_token == mine.eos_token == hf_tok.eos_token


def test_folders_with_extra_rules_go_to_transformers(tmp_path):
    import json
    import shutil

    shutil.copy(default_model_dir() / "tokenizer.json", tmp_path)
    cfg = {"tokenizer_class": "TokenizersBackend", "add_bos_token": True}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert not tokenizer.handles(tmp_path)
    cfg.pop("add_bos_token")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert tokenizer.handles(tmp_path)
    assert not tokenizer.handles(tmp_path / "missing")
