"""Masks on literal token lists: only response tokens and the end of turn are trained (every
token of a plain text); tool calls are trained, tool results are context."""
import json

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
from lab.records import Conversation, TextRecord, ToolCall, Turn

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


# ------------------------------------------------------------------------------ plain text: the pre-training objective

def test_text_record_trains_every_token_then_eos(tok):
    enc = encode(TextRecord("Hello world"), tok)
    assert enc.input_ids == [19556, 905, 2]          # "Hello", " world", EOS (<|im_end|>)
    assert enc.labels == [IGNORE, 905, 2]            # nothing predicts the first token
    assert token_preview(TextRecord("Hello world"), tok) == [("Hello", False), (" world", True), ("<|im_end|>", True)]
    # completion_only is about replies; a text has none, so it changes nothing
    assert encode(TextRecord("Hello world"), tok, completion_only=False) == enc


def test_text_record_truncation_and_empty_text(tok):
    enc = encode(TextRecord("Hello world"), tok, max_length=2)
    assert (enc.input_ids, enc.labels, enc.truncated) == ([19556, 905], [IGNORE, 905], True)
    with pytest.warns(DataWarning):
        kept, notes = encode_dataset([TextRecord(""), TextRecord("Hello world")], tok)
    assert len(kept) == 1 and notes == ["example 1 is an empty text and was dropped"]


# ------------------------------------------------------------------------------ tool turns

# a ChatML template that shows tools: definitions in a system turn, calls after the reply text
TOOL_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<call>{{ c['function'] | tojson }}</call>{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
WEATHER = [{"type": "function", "function": {"name": "weather"}}]
TOOL_CHAT = Conversation((Turn("user", "Oslo?"), Turn("assistant", "", (ToolCall("weather", '{"city": "Oslo"}'),)),
                          Turn("tool", "-3 C"), Turn("assistant", "It is -3 C.")), tools=json.dumps(WEATHER))


def test_tool_calls_are_trained_and_results_are_context(tok, monkeypatch):
    monkeypatch.setattr(tok, "chat_template", TOOL_TEMPLATE)
    preview = token_preview(TOOL_CHAT, tok)
    trained = "".join(t for t, on in preview if on)
    context = "".join(t for t, on in preview if not on)
    assert trained == ('<call>{"name": "weather", "arguments": {"city": "Oslo"}}</call><|im_end|>\n'
                       "It is -3 C.<|im_end|>\n")
    assert context == ('<|im_start|>system\nTools: [{"type": "function", "function": {"name": "weather"}}]<|im_end|>\n'
                       "<|im_start|>user\nOslo?<|im_end|>\n<|im_start|>assistant\n"
                       "<|im_start|>tool\n-3 C<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("template,message", [
    (None, "turn 2 calls the tool 'weather' (a 'function_call' or 'tool_calls' turn), but the chat template "
           "does not render tool calls; use a model whose chat template supports tools"),
    (TOOL_TEMPLATE.replace("{{ m['content'] }}", "{% if m.role != 'tool' %}{{ m['content'] }}{% endif %}"),
     "turn 3 is a tool's result (an 'observation' or 'tool' turn), but the chat template does not render tool results"),
    (TOOL_TEMPLATE.replace("Tools: {{ tools | tojson }}", "You may call tools."),
     "the record defines the tool 'weather' ('tools'), but the chat template does not show tool definitions"),
])
def test_templates_that_leave_tool_turns_out_are_refused(tok, monkeypatch, template, message):
    if template:
        monkeypatch.setattr(tok, "chat_template", template)
    with pytest.raises(TemplateError) as e:
        encode(TOOL_CHAT, tok)
    assert message in str(e.value)


def test_default_template_refuses_tool_calls(tok, monkeypatch):
    monkeypatch.setattr(tok, "chat_template", None)
    with pytest.raises(TemplateError, match="turn 2 calls the tool 'weather'"):
        encode(TOOL_CHAT, tok)
