"""The lab's record types: a conversation (chat turns) and a plain text (pre-training data).

Every reader turns its format into `Conversation` or `TextRecord`; every writer, the trainer
and the widgets take them. Records are immutable, so a dataset variant never changes its source.

A conversation is optional system text and turns that start with the user and alternate
user, assistant; an assistant turn may call tools (`tool_calls`), and then the tools' results
(`tool` turns) come before the assistant speaks again. `undesirable=True` (`"label": false` in
KTO-style data) marks a reply not to learn: the trainer leaves such records out unless asked.

>>> c = Conversation.single("Say hi", "Hi!", system="Be brief.")
>>> c.messages()
[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Say hi'}, {'role': 'assistant', 'content': 'Hi!'}]
>>> c.prompt, c.response
('Say hi', 'Hi!')
>>> TextRecord("Once upon a time").to_json()
{'text': 'Once upon a time'}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

ROLES = ("user", "assistant", "tool")


class DataError(ValueError):
    """Bad data, said for a person: where (file, line or record) and what is wrong.

    The CLI prints `str(err)` on one line and exits with status 2; no traceback.
    """

    def __init__(self, message: str, *, source: str | None = None, where: str | None = None):
        self.message, self.source, self.where = message, source, where
        place = ", ".join(p for p in (source, where) if p)
        super().__init__(f"{place}: {message}" if place else message)


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool by the assistant; `arguments` is the arguments object as JSON text
    (text keeps records hashable; `to_json` gives the object back, as chat templates want it)."""

    name: str
    arguments: str = "{}"

    def to_json(self) -> dict:
        return {"type": "function", "function": {"name": self.name, "arguments": json.loads(self.arguments)}}


@dataclass(frozen=True)
class Turn:
    role: str  # "user", "assistant" or "tool" (a tool's result)
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # assistant turns only: the tools it calls

    def message(self) -> dict:
        m = {"role": self.role, "content": self.content}
        if self.tool_calls:
            m["tool_calls"] = [c.to_json() for c in self.tool_calls]
        return m


def next_roles(previous: Turn | None) -> tuple[str, ...]:
    """The roles a turn may have after `previous` (None: the first turn).

    >>> next_roles(None), next_roles(Turn("user", "q")), next_roles(Turn("tool", "42"))
    (('user',), ('assistant',), ('tool', 'assistant'))
    """
    if previous is None:
        return ("user",)
    if previous.role == "user":
        return ("assistant",)
    if previous.role == "tool":
        return ("tool", "assistant")
    return ("tool",) if previous.tool_calls else ("user",)


def order_problem(turns) -> tuple[int, str] | None:
    """(0-based index, what is wrong) for the first turn out of order, or None when all fit."""
    previous = None
    for i, t in enumerate(turns):
        want = next_roles(previous)
        if t.role not in want:
            rule = ("turns alternate user, assistant, starting with user"
                    if {*want, t.role} <= {"user", "assistant"}
                    else "a tool call is followed by its 'tool' results, then by the assistant")
            return i, f"is from '{t.role}' but should be from '{' or '.join(want)}' ({rule})"
        if t.tool_calls and t.role != "assistant":
            return i, f"is from '{t.role}' but has tool calls; only assistant turns call tools"
        previous = t
    return None


@dataclass(frozen=True)
class Conversation:
    """One training example: user and assistant turns (and tool turns), starting with the user.

    A conversation that ends on a user turn is a prompt (for generation), not a training example.
    `tags` name categories (used by what-if variants that drop a category); `id` is optional;
    `tools` is the JSON text of the tool definitions the chat template shows the model;
    `undesirable` marks a reply not to learn (`"label": false` in KTO-style data).
    """

    turns: tuple[Turn, ...]
    system: str | None = None
    tags: tuple[str, ...] = ()
    id: str | None = None
    tools: str | None = None
    undesirable: bool = False
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        # normalise so that equal records compare equal after a JSONL round trip
        object.__setattr__(self, "turns", tuple(self.turns))
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "system", self.system or None)
        object.__setattr__(self, "id", self.id or None)
        object.__setattr__(self, "tools", self.tools or None)
        if not self.turns:
            raise DataError("a conversation needs at least one user turn")
        for i, t in enumerate(self.turns):
            if not isinstance(t.content, str):
                raise DataError(f"turn {i + 1}: content must be text, got {type(t.content).__name__}")
        problem = order_problem(self.turns)
        if problem:
            raise DataError(f"turn {problem[0] + 1} {problem[1]}")

    @classmethod
    def single(cls, prompt: str, response: str | None = None, *, system: str | None = None,
               tags: tuple[str, ...] = (), id: str | None = None) -> "Conversation":
        """One user turn and (optionally) one assistant reply."""
        turns = [Turn("user", prompt)] + ([Turn("assistant", response)] if response is not None else [])
        return cls(tuple(turns), system=system or None, tags=tuple(tags), id=id)

    @property
    def prompt(self) -> str:
        """The last user turn's text."""
        return [t for t in self.turns if t.role == "user"][-1].content

    @property
    def response(self) -> str | None:
        """The last assistant turn's text, or None for a prompt-only record."""
        return self.turns[-1].content if self.turns[-1].role == "assistant" else None

    @property
    def is_trainable(self) -> bool:
        return self.turns[-1].role == "assistant"

    def prompt_only(self) -> "Conversation":
        """The conversation up to (not including) its last assistant turn: what the model sees."""
        return replace(self, turns=self.turns[:-1]) if self.is_trainable else self

    def with_response(self, response: str) -> "Conversation":
        """A copy whose last assistant turn says `response` (added if the record is a prompt)."""
        return replace(self, turns=self.prompt_only().turns + (Turn("assistant", response),))

    def tool_list(self) -> list[dict] | None:
        """The tool definitions, as chat templates take them (`tools=`), or None."""
        return json.loads(self.tools) if self.tools else None

    def messages(self) -> list[dict]:
        """OpenAI/TRL-style messages, the form chat templates take."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [t.message() for t in self.turns]

    def to_json(self) -> dict:
        """The JSONL form the lab writes: chat `messages` plus optional `tools`, `label`,
        `tags` and `id`."""
        out: dict = {"messages": self.messages()}
        if self.tools:
            out["tools"] = self.tool_list()
        if self.undesirable:
            out["label"] = False
        if self.tags:
            out["tags"] = list(self.tags)
        if self.id:
            out["id"] = self.id
        return out


@dataclass(frozen=True)
class TextRecord:
    """Plain text, trained with the pre-training objective: every token, then the end-of-text
    token (`lab.masks.encode`), where a conversation trains only its replies.

    Read from `{"text": ...}` records and `.txt` files; SFT data and pre-training data side by
    side is one of the workshop's lessons.
    """

    text: str
    tags: tuple[str, ...] = ()
    id: str | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    is_trainable = True   # text is all training material
    undesirable = False

    def __post_init__(self):
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "id", self.id or None)
        if not isinstance(self.text, str):
            raise DataError(f"'text' must be a string, got {type(self.text).__name__}")

    def to_json(self) -> dict:
        out: dict = {"text": self.text}
        if self.tags:
            out["tags"] = list(self.tags)
        if self.id:
            out["id"] = self.id
        return out


Record = Conversation | TextRecord
