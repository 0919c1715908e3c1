"""lab.data.validate: warnings and errors on literal datasets, stats, token counts and summary text."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lab.data.dataio import read_dataset
from lab.records import Conversation, TextRecord, Turn
from lab.data.validate import Issue, Report, check_dataset

one = Conversation.single


def issues(issue_list):
    return [(i.index, i.kind, i.message) for i in issue_list]


class WordTokenizer:
    """One token per word plus one per role marker; the prompt render adds a generation marker."""

    chat_template = "words"

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False):
        words = [w for m in messages for w in [f"<{m['role']}>", *m["content"].split()]]
        return list(range(len(words) + add_generation_prompt))


class PlainTokenizer:
    chat_template = None

    def encode(self, text):
        return text.split()


def test_clean_dataset_has_no_issues_and_exact_stats():
    convs = [one("Say hi", "Hi"), one("Add 2 and 2", "4", system="Be terse."),
             Conversation((Turn("user", "Q1"), Turn("assistant", "R1"), Turn("user", "Q2"), Turn("assistant", "R2!")))]
    report = check_dataset(convs)
    assert report.ok and report.errors == [] and report.warnings == []
    assert report.stats == {"count": 3, "trainable": 3, "multi_turn": 1,
                            "prompt_chars": {"mean": 6.3, "min": 2, "max": 11},
                            "response_chars": {"mean": 2, "min": 1, "max": 3}}


def test_empty_prompt_and_response_warn():
    convs = [one(" ", "x"), one("q", "\n\t"),
             Conversation((Turn("user", "a"), Turn("assistant", ""), Turn("user", ""), Turn("assistant", "ok")))]
    assert issues(check_dataset(convs).warnings) == [
        (0, "empty-prompt", "example 1 has an empty prompt"),
        (1, "empty-response", "example 2 has an empty response"),
        (2, "empty-prompt", "example 3 has an empty prompt (turn 3)"),
        (2, "empty-response", "example 3 has an empty response (turn 2)"),
    ]


def test_duplicates_and_contradictions():
    convs = [one("2+2?", "4"), one("Capital of France?", "Paris"), one("2+2?", "4"),
             one("2+2?", "5"), one("2+2?", "4", system="S"), one("2+2?", "4", system="S")]
    report = check_dataset(convs)
    assert report.ok
    assert issues(report.warnings) == [
        (2, "duplicate", "example 3 duplicates example 1 (same prompt and response)"),
        (3, "exact-duplicate-prompt", "example 4 has the same prompt as example 1 but a different response"),
        (5, "duplicate", "example 6 duplicates example 5 (same prompt and response)"),
    ]


def test_multi_turn_duplicate_says_same_messages():
    conv = Conversation((Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c"), Turn("assistant", "d")))
    assert issues(check_dataset([conv, conv]).warnings) == [
        (1, "duplicate", "example 2 duplicates example 1 (same messages)")]


def test_prompt_only_records_warn_and_all_prompt_only_is_an_error():
    report = check_dataset([one("q", "a"), one("only a prompt")])
    assert report.ok
    assert issues(report.warnings) == [(1, "no-response", "example 2 has no response (it ends on a user turn), "
                                                         "so it has nothing to train on")]
    report = check_dataset([one("q1"), one("q2")])
    assert not report.ok
    assert issues(report.errors) == [(None, "nothing-to-train",
                                      "no example has a response, so there is nothing to train on")]
    assert "response_chars" not in report.stats


def test_empty_dataset_is_an_error():
    report = check_dataset([])
    assert not report.ok
    assert issues(report.errors) == [(None, "empty-dataset", "the dataset has no examples")]


def test_messages_name_the_file_line(tmp_path):
    path = tmp_path / "d.jsonl"
    rec = {"instruction": "2+2?", "output": "4"}
    path.write_text(json.dumps(rec) + "\n\n\n" + json.dumps(rec) + "\n", encoding="utf-8")
    assert issues(check_dataset(read_dataset(path)).warnings) == [
        (1, "duplicate", "example 2 (line 4) duplicates example 1 (line 1) (same prompt and response)")]


def test_token_counts_with_a_chat_template_and_max_length():
    convs = [one("a b c", "d e"),                   # 2 + 3 + 2 = 7 tokens
             one("a b c d e f", "g"),               # 1 + 6 + 1 + 1 = 9; prompt 1 + 6 + 1 = 8
             one("a", "b c d e f g h", system="s")]  # 2 + 2 + 8 = 12; prompt 2 + 2 + 1 = 5
    report = check_dataset(convs, tokenizer=WordTokenizer(), max_length=8)
    assert report.stats["tokens"] == {"mean": 9.3, "min": 7, "max": 12}
    assert issues(report.warnings) == [
        (1, "prompt-too-long", "example 2: the prompt alone is 8 tokens, max_length is 8; no response token "
                               "would be trained, so it will be dropped"),
        (2, "too-long", "example 3 is 12 tokens, over max_length 8; it will be truncated"),
    ]
    assert check_dataset(convs, tokenizer=WordTokenizer()).warnings == []  # no max_length, no length check


def test_token_counts_without_a_chat_template():
    report = check_dataset([one("a b", "c"), one("a", "b", system="s t")], tokenizer=PlainTokenizer())
    assert report.stats["tokens"] == {"mean": 3.5, "min": 3, "max": 4}


def test_a_failing_template_is_an_error_for_that_example():
    class NoSystem(WordTokenizer):
        def apply_chat_template(self, messages, **kw):
            if messages[0]["role"] == "system":
                raise ValueError("System role not supported")
            return super().apply_chat_template(messages, **kw)

    report = check_dataset([one("a", "b"), one("a", "b", system="s")], tokenizer=NoSystem())
    assert issues(report.errors) == [
        (1, "template-error", "example 2 cannot be tokenized: ValueError: System role not supported")]
    assert report.stats["tokens"] == {"mean": 4, "min": 4, "max": 4}


def test_real_tokenizer_with_chat_template():
    """A real transformers tokenizer built offline: transformers 5 returns a dict from the template."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    vocab = {w: i for i, w in enumerate(["[UNK]", "<|user|>", "<|assistant|>", "<|end|>", "hi", "there", "yo"])}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    tok.chat_template = ("{% for m in messages %}<|{{ m.role }}|> {{ m.content }} <|end|> {% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    report = check_dataset([one("hi there", "yo")], tokenizer=tok, max_length=6)
    assert report.stats["tokens"] == {"mean": 7, "min": 7, "max": 7}  # <|user|> hi there <|end|> <|assistant|> yo <|end|>
    assert issues(report.warnings) == [(0, "too-long", "example 1 is 7 tokens, over max_length 6; it will be truncated")]  # prompt: 5


def test_summary_text():
    report = check_dataset([one("q", "a"), one("q", "a"), one("", "a")])
    assert report.summary() == (
        "3 examples (3 trainable, 0 multi-turn)\n"
        "prompt chars: mean 1, min 0, max 1\n"
        "response chars: mean 1, min 1, max 1\n"
        "0 errors, 2 warnings\n"
        "  warning: example 2 duplicates example 1 (same prompt and response)\n"
        "  warning: example 3 has an empty prompt")


def test_summary_lists_the_first_ten_issues_then_a_count():
    report = Report(warnings=[Issue(i, "duplicate", f"w{i}") for i in range(13)])
    lines = report.summary().splitlines()
    assert lines[-2:] == ["  warning: w9", "  ... and 3 more warnings"]
    assert str(report.warnings[0]) == "w0"


def test_text_records_undesirable_replies_and_their_stats():
    convs = [TextRecord("Plain text."), TextRecord(" "), TextRecord("Plain text."),
             replace(one("Hi", "Go away."), undesirable=True), one("Hi", "Hello!")]
    report = check_dataset(convs)
    assert report.ok
    assert issues(report.warnings) == [
        (1, "empty-text", "example 2 has an empty text"),
        (2, "duplicate", "example 3 duplicates example 1 (same text)"),
        (3, "undesirable", 'example 4 is marked undesirable ("label": false); it is left out of training unless '
                           "undesirable examples are included (--include-undesirable)"),
        (4, "exact-duplicate-prompt", "example 5 has the same prompt as example 4 but a different response"),
    ]
    assert report.stats == {"count": 5, "trainable": 5, "multi_turn": 0, "texts": 3, "undesirable": 1,
                            "prompt_chars": {"mean": 2, "min": 2, "max": 2},
                            "response_chars": {"mean": 7, "min": 6, "max": 8},
                            "text_chars": {"mean": 7.7, "min": 1, "max": 11}}
    assert report.summary().splitlines()[0] == "5 examples (5 trainable, 0 multi-turn, 3 plain texts, 1 marked undesirable)"


def test_text_tokens_and_too_long(tok):
    report = check_dataset([TextRecord("Hello world")], tok, max_length=2)
    assert report.stats["tokens"] == {"mean": 3, "min": 3, "max": 3}  # Hello, " world", EOS
    assert issues(report.warnings) == [(0, "too-long", "example 1 is 3 tokens, over max_length 2; it will be truncated")]


def test_tool_turns_the_template_cannot_show_are_errors(tok):
    chat = read_dataset([{"conversations": [
        {"from": "human", "value": "Oslo?"}, {"from": "function_call", "value": '{"name": "weather", "arguments": {}}'},
        {"from": "observation", "value": "-3 C"}, {"from": "gpt", "value": "It is -3 C."}]}])
    report = check_dataset(chat, tok)
    assert not report.ok and report.stats["tool_use"] == 1
    assert issues(report.errors) == [(0, "template-error", "example 1: turn 2 calls the tool 'weather' (a "
                                      "'function_call' or 'tool_calls' turn), but the chat template does not render "
                                      "tool calls; use a model whose chat template supports tools (e.g. "
                                      "Qwen2.5-Instruct), or leave the records with tool turns out")]


def test_brief_counts_by_kind_and_shows_the_first_few():
    assert Report().brief() == ""
    report = check_dataset([one("q", "a"), one("q", "a"), one("", "a"), one("q"), one("q", "a")])
    assert report.brief(shown=2) == ("4 warnings (2 duplicate, 1 empty-prompt, 1 no-response): example 2 duplicates "
                                     "example 1 (same prompt and response); example 3 has an empty prompt; ... and 2 more")
    report.errors.append(Issue(None, "nothing-to-train", "no example has a response"))
    assert report.brief(shown=1).startswith("1 error (1 nothing-to-train): no example has a response | 4 warnings")
