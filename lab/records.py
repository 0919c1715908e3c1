"""The one record type of the lab: a conversation (optional system text, user/assistant turns).

Every reader turns its format into `Conversation`; every writer, the trainer and the widgets
take `Conversation`. A record is immutable, so a dataset variant never changes its source.

>>> c = Conversation.single("Say hi", "Hi!", system="Be brief.")
>>> c.messages()
[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Say hi'}, {'role': 'assistant', 'content': 'Hi!'}]
>>> c.prompt, c.response
('Say hi', 'Hi!')
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

ROLES = ("user", "assistant")


class DataError(ValueError):
    """Bad data, said for a person: where (file, line or record) and what is wrong.

    The CLI prints `str(err)` on one line and exits with status 2; no traceback.
    """

    def __init__(self, message: str, *, source: str | None = None, where: str | None = None):
        self.message, self.source, self.where = message, source, where
        place = ", ".join(p for p in (source, where) if p)
        super().__init__(f"{place}: {message}" if place else message)


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Conversation:
    """One training example: turns alternate user, assistant, ... starting with the user.

    A conversation that ends on a user turn is a prompt (for generation), not a training example.
    `tags` name categories (used by what-if variants that drop a category); `id` is optional.
    """

    turns: tuple[Turn, ...]
    system: str | None = None
    tags: tuple[str, ...] = ()
    id: str | None = None
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        # normalise so that equal records compare equal after a JSONL round trip
        object.__setattr__(self, "turns", tuple(self.turns))
        object.__setattr__(self, "tags", tuple(self.tags))
        object.__setattr__(self, "system", self.system or None)
        object.__setattr__(self, "id", self.id or None)
        if not self.turns:
            raise DataError("a conversation needs at least one user turn")
        for i, t in enumerate(self.turns):
            want = ROLES[i % 2]
            if not isinstance(t.content, str):
                raise DataError(f"turn {i + 1}: content must be text, got {type(t.content).__name__}")
            if t.role != want:
                raise DataError(f"turn {i + 1} is from '{t.role}', expected '{want}' "
                                "(turns alternate user, assistant, starting with user)")

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

    def messages(self) -> list[dict]:
        """OpenAI/TRL-style messages, the form chat templates take."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [{"role": t.role, "content": t.content} for t in self.turns]

    def to_json(self) -> dict:
        """The JSONL form the lab writes: chat `messages` plus optional `tags` and `id`."""
        out: dict = {"messages": self.messages()}
        if self.tags:
            out["tags"] = list(self.tags)
        if self.id:
            out["id"] = self.id
        return out
