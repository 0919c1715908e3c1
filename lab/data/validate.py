"""Checks on a parsed dataset before training: what would waste or mislead a run.

Parsing (`lab.data.dataio`) already refuses malformed records; this finds records that are well
formed but suspect (empty text, duplicates, contradictions, too long for `max_length`, replies
marked undesirable, tool turns the chat template cannot show) and summarises the dataset.
`Report.brief()` says it all in one line, for the trainer's stderr and the widgets' messages.
Messages count examples from 1, as a person does, and add the file
line when the record came from a file; `Issue.index` is the 0-based position, for code.

>>> from lab.records import Conversation
>>> report = check_dataset([Conversation.single("2+2?", "4"), Conversation.single("2+2?", "4")])
>>> report.ok, [w.message for w in report.warnings]
(True, ['example 2 duplicates example 1 (same prompt and response)'])
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import mean

from ..masks import TemplateError, encode, text_ids
from ..records import Conversation, Record, TextRecord

_SHOWN = 10  # issues of each severity that `summary()` lists before "... and N more"


@dataclass(frozen=True)
class Issue:
    index: int | None  # 0-based position in the dataset; None for the dataset as a whole
    kind: str          # short code, e.g. "empty-response", "duplicate", "too-long"
    message: str       # for a person: "example 12 duplicates example 3 (...)"

    def __str__(self) -> str:
        return self.message


@dataclass
class Report:
    errors: list[Issue] = field(default_factory=list)    # training would fail or be pointless
    warnings: list[Issue] = field(default_factory=list)  # training runs, but look at these
    stats: dict = field(default_factory=dict)            # counts and length summaries

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """A few lines for the CLI: counts, lengths, then the issues (the first few of each)."""
        s = self.stats
        extra = "".join(f", {s[key]} {what}" for key, what in (("texts", "plain texts"),
                        ("tool_use", "with tool turns"), ("undesirable", "marked undesirable")) if s.get(key))
        lines = [f"{s.get('count', 0)} examples ({s.get('trainable', 0)} trainable, "
                 f"{s.get('multi_turn', 0)} multi-turn{extra})"]
        for key, unit in (("prompt_chars", "prompt chars"), ("response_chars", "response chars"),
                          ("text_chars", "text chars"), ("tokens", "tokens")):
            if key in s:
                lines.append(f"{unit}: mean {s[key]['mean']:.0f}, min {s[key]['min']}, max {s[key]['max']}")
        lines.append(f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        for label, issues in (("error", self.errors), ("warning", self.warnings)):
            lines += [f"  {label}: {i.message}" for i in issues[:_SHOWN]]
            if len(issues) > _SHOWN:
                lines.append(f"  ... and {len(issues) - _SHOWN} more {label}s")
        return "\n".join(lines)

    def brief(self, shown: int = 3) -> str:
        """Errors and warnings in one line: counts by kind, then the first `shown` of them
        ("" when there are none). What `sft-lab train` prints, and the widgets show on import.

        >>> Report(warnings=[Issue(1, "duplicate", "example 2 duplicates example 1"),
        ...                  Issue(3, "too-long", "example 4 is 300 tokens")]).brief()
        '2 warnings (1 duplicate, 1 too-long): example 2 duplicates example 1; example 4 is 300 tokens'
        """
        parts = []
        for label, issues in (("error", self.errors), ("warning", self.warnings)):
            if issues:
                kinds = ", ".join(f"{n} {k}" for k, n in Counter(i.kind for i in issues).most_common())
                more = f"; ... and {len(issues) - shown} more" if len(issues) > shown else ""
                first = "; ".join(i.message for i in issues[:shown])
                parts.append(f"{len(issues)} {label}{'s' if len(issues) > 1 else ''} ({kinds}): {first}{more}")
        return " | ".join(parts)


def check_dataset(conversations, tokenizer=None, max_length: int | None = None) -> Report:
    """Check a list of records for training; token counts need a `tokenizer`.

    Tokens are counted on the chat template's rendering when the tokenizer has one, else on
    the plain text of the messages (a text record: its text and EOS). With a tokenizer, tool
    turns the chat template cannot show are errors. `max_length` (with a tokenizer) flags examples that will
    be truncated, or dropped when the prompt alone fills it.
    """
    convs = list(conversations)
    report = Report()
    if not convs:
        report.errors.append(Issue(None, "empty-dataset", "the dataset has no examples"))
        return report
    report.warnings += (_empty_text(convs) + _prompt_only(convs) + _undesirable(convs)
                        + _duplicates(convs))
    tokens = _token_counts(convs, tokenizer, report) if tokenizer is not None else None
    if tokens is not None and max_length is not None:
        report.warnings += _too_long(convs, tokens, tokenizer, max_length)
    report.warnings.sort(key=lambda i: -1 if i.index is None else i.index)
    if not any(c.is_trainable for c in convs):
        report.errors.append(Issue(None, "nothing-to-train",
                                   "no example has a response, so there is nothing to train on"))
    report.stats = _stats(convs, tokens)
    return report


def _name(i: int, conv: Record) -> str:
    """'example 3', with the file line when known: 'example 3 (line 5)'."""
    where = conv.meta.get("where")
    return f"example {i + 1}" + (f" ({where})" if where and where != f"record {i + 1}" else "")


def _empty_text(convs: list[Record]) -> list[Issue]:
    """User or assistant turns (but tool calls) or texts that are empty or whitespace only."""
    issues = []
    for i, c in enumerate(convs):
        if isinstance(c, TextRecord):
            if not c.text.strip():
                issues.append(Issue(i, "empty-text", f"{_name(i, c)} has an empty text"))
            continue
        for role, kind, what in (("user", "empty-prompt", "prompt"), ("assistant", "empty-response", "response")):
            empty = [n for n, t in enumerate(c.turns, 1)
                     if t.role == role and not t.content.strip() and not t.tool_calls]
            if empty:
                turns = "" if len(c.turns) <= 2 else f" (turn {', '.join(map(str, empty))})"
                issues.append(Issue(i, kind, f"{_name(i, c)} has an empty {what}{turns}"))
    return issues


def _prompt_only(convs: list[Record]) -> list[Issue]:
    return [Issue(i, "no-response", f"{_name(i, c)} has no response (it ends on a user turn), "
                  "so it has nothing to train on") for i, c in enumerate(convs) if not c.is_trainable]


def _undesirable(convs: list[Record]) -> list[Issue]:
    return [Issue(i, "undesirable", f"{_name(i, c)} is marked undesirable (\"label\": false); it is "
                  "left out of training unless undesirable examples are included (--include-undesirable)")
            for i, c in enumerate(convs) if c.undesirable]


def _key(c: Record) -> tuple:
    """What makes two records the same example (tags, id and labels aside)."""
    return ("text", c.text) if isinstance(c, TextRecord) else (c.system, c.tools, c.turns)


def _duplicates(convs: list[Record]) -> list[Issue]:
    """Exact duplicates, and the same prompt answered differently (a contradiction)."""
    issues = []
    seen: dict = {}        # _key -> first index
    prompts: dict = {}     # (system, tools, turns before the last reply) -> first index
    for i, c in enumerate(convs):
        key = _key(c)
        if key in seen:
            what = ("same text" if isinstance(c, TextRecord) else
                    "same prompt and response" if len(c.turns) == 2 else "same messages")
            issues.append(Issue(i, "duplicate", f"{_name(i, c)} duplicates "
                                f"{_name(seen[key], convs[seen[key]])} ({what})"))
            continue
        seen[key] = i
        if isinstance(c, TextRecord) or not c.is_trainable:
            continue
        prompt_key = (c.system, c.tools, c.prompt_only().turns)
        if prompt_key in prompts:
            j = prompts[prompt_key]
            issues.append(Issue(i, "exact-duplicate-prompt", f"{_name(i, c)} has the same prompt as "
                                f"{_name(j, convs[j])} but a different response"))
        else:
            prompts[prompt_key] = i
    return issues


def _token_ids(tokenizer, conv: Record, *, prompt_only: bool = False) -> list:
    """Token ids of the record as training would see it (chat template if any)."""
    if isinstance(conv, TextRecord):
        return text_ids(tokenizer, conv.text)
    msgs = (conv.prompt_only() if prompt_only else conv).messages()
    if getattr(tokenizer, "chat_template", None):
        tools = {"tools": conv.tool_list()} if conv.tools else {}
        ids = tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=prompt_only, **tools)
        return list(ids["input_ids"] if isinstance(ids, Mapping) else ids)  # transformers 5 gives a dict
    return list(tokenizer.encode("\n".join(m["content"] for m in msgs)))


def _uses_tools(c: Record) -> bool:
    return isinstance(c, Conversation) and bool(c.tools or any(t.role == "tool" or t.tool_calls for t in c.turns))


def _token_counts(convs: list[Record], tokenizer, report: Report) -> list[int | None]:
    """Token count per example; a template that fails on an example, or cannot show its tool
    turns (`lab.masks`), is an error."""
    counts: list[int | None] = []
    for i, c in enumerate(convs):
        try:
            if _uses_tools(c):
                encode(c, tokenizer)  # refuses tool turns the template leaves out
            counts.append(len(_token_ids(tokenizer, c)))
        except TemplateError as e:
            counts.append(None)
            report.errors.append(Issue(i, "template-error", f"{_name(i, c)}: {e}"))
        except Exception as e:  # any template/tokenizer failure is the example's problem to report
            counts.append(None)
            report.errors.append(Issue(i, "template-error",
                                       f"{_name(i, c)} cannot be tokenized: {type(e).__name__}: {e}"))
    return counts


def _too_long(convs: list[Record], tokens: list[int | None], tokenizer,
              max_length: int) -> list[Issue]:
    """Examples over `max_length`: truncated, or dropped when the prompt alone fills it."""
    issues = []
    for i, (c, n) in enumerate(zip(convs, tokens)):
        if n is None or n <= max_length:
            continue
        reply = isinstance(c, Conversation) and c.is_trainable
        prompt_n = len(_token_ids(tokenizer, c, prompt_only=True)) if reply else n
        if reply and prompt_n >= max_length:
            issues.append(Issue(i, "prompt-too-long", f"{_name(i, c)}: the prompt alone is {prompt_n} "
                                f"tokens, max_length is {max_length}; no response token would be "
                                "trained, so it will be dropped"))
        else:
            issues.append(Issue(i, "too-long", f"{_name(i, c)} is {n} tokens, over max_length "
                                f"{max_length}; it will be truncated"))
    return issues


def _spread(values: list[int]) -> dict:
    return {"mean": round(mean(values), 1), "min": min(values), "max": max(values)}


def _stats(convs: list[Record], tokens: list[int | None] | None) -> dict:
    """Counts, and the spread of the last prompt's and response's lengths, the texts' lengths
    (and tokens). Counts of plain texts, tool use and undesirable replies only when not 0."""
    chats = [c for c in convs if isinstance(c, Conversation)]
    texts = [c for c in convs if isinstance(c, TextRecord)]
    replies = [c for c in chats if c.is_trainable]
    stats = {"count": len(convs), "trainable": sum(c.is_trainable for c in convs),
             "multi_turn": sum(len(c.turns) > 2 for c in chats)}
    for key, n in (("texts", len(texts)), ("tool_use", sum(map(_uses_tools, chats))),
                   ("undesirable", sum(c.undesirable for c in chats))):
        if n:
            stats[key] = n
    if chats:
        stats["prompt_chars"] = _spread([len(c.prompt) for c in chats])
    if replies:
        stats["response_chars"] = _spread([len(c.response) for c in replies])
    if texts:
        stats["text_chars"] = _spread([len(c.text) for c in texts])
    counted = [n for n in tokens or [] if n is not None]
    if counted:
        stats["tokens"] = _spread(counted)
    return stats
