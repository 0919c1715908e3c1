"""Masks on literal token lists: only response tokens and the end of turn are trained."""
import pytest

from lab.masks import (
    DEFAULT_TEMPLATE,
    IGNORE,
    DataWarning,
    Encoded,
    TemplateError,
    collate,
    encode,
    encode_dataset,
    token_preview,
)
from lab.records import Conversation, Turn

# SmolLM2's ChatML: <|im_start|>=1, <|im_end|>=2, "\n"=198, "user"=4093, "ass"+"istant"=520,9531
SYSTEM_S = [1, 9690, 198, 67, 2, 198]           # <|im_start|>system\nS<|im_end|>\n


def test_single_turn_trains_response_and_end_of_turn(tok):
    enc = encode(Conversation.single("Say hi", "Hi!", system="S"), tok)
    assert enc.input_ids == SYSTEM_S + [1, 4093, 198, 36218, 15876, 2, 198,
                                        1, 520, 9531, 198, 26843, 17, 2, 198]
    assert enc.labels == [IGNORE] * 17 + [26843, 17, 2, 198]
    assert not enc.truncated and enc.n_trained == 4


def test_multi_turn_trains_every_assistant_turn(tok):
    conv = Conversation((Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c"),
                         Turn("assistant", "d")), system="S")
    preview = token_preview(conv, tok)
    assert [t for t, trained in preview if trained] == ["b", "<|im_end|>", "\n", "d", "<|im_end|>", "\n"]


def test_full_loss_trains_every_token(tok):
    enc = encode(Conversation.single("Say hi", "Hi!", system="S"), tok, completion_only=False)
    assert enc.labels == enc.input_ids


def test_mask_does_not_come_from_pad_ids(tok):
    # pad == eos == <|im_end|> (id 2) here; the prompt's <|im_end|> stays untrained
    assert tok.pad_token_id == tok.eos_token_id == 2
    enc = encode(Conversation.single("Say hi", "Hi!", system="S"), tok)
    assert enc.labels[4] == IGNORE and enc.input_ids[4] == 2
    assert enc.labels[-2] == 2


def test_truncation_and_drop_are_noted(tok):
    long_prompt = Conversation.single("word " * 50, "ok")
    short = Conversation.single("hi", "hello there " * 20)
    with pytest.warns(DataWarning):
        kept, notes = encode_dataset([long_prompt, short], tok, max_length=40)
    assert len(kept) == 1 and kept[0].truncated and len(kept[0].input_ids) == 40
    assert "example 1" in notes[0] and "dropped" in notes[0]
    assert "example 2 was cut" in notes[1]


def test_prompt_only_records_are_skipped(tok):
    with pytest.warns(DataWarning):
        kept, notes = encode_dataset([Conversation.single("no reply")], tok)
    assert kept == [] and "no assistant reply" in notes[0]


def test_default_template_for_tokenizers_without_one(tok, monkeypatch):
    monkeypatch.setattr(tok, "chat_template", None)
    enc = encode(Conversation.single("Say hi", "Hi!"), tok)
    # no default system prompt: straight to the user turn
    assert enc.input_ids[:3] == [1, 4093, 198]
    assert [t for t, trained in token_preview(Conversation.single("Say hi", "Hi!"), tok) if trained] == \
        ["Hi", "!", "<|im_end|>", "\n"]
    assert "im_start" in DEFAULT_TEMPLATE


def test_non_prefix_template_is_refused(tok, monkeypatch):
    # a template that renders the last assistant turn differently breaks the prefix rule
    bad = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
           "{% if loop.last and m['role'] == 'assistant' %} [END]{% endif %}\n{% endfor %}"
           "{% if add_generation_prompt %}assistant: [START]{% endif %}")
    monkeypatch.setattr(tok, "chat_template", bad)
    with pytest.raises(TemplateError, match="prefix"):
        encode(Conversation.single("q", "a"), tok)


def test_collate_pads_right_and_never_trains_padding():
    batch = collate([Encoded([5, 6, 7], [IGNORE, 6, 7]), Encoded([8], [8])], pad_id=2)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
