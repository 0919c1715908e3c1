"""Chat template and loss mask: which tokens the model is trained to predict.

SFT maximises the likelihood of the response given the instruction, so only response tokens
(and the end-of-turn token, so the model learns to stop) get a label; prompt tokens get -100.
As in TRL, the mask comes from rendering: the text before each assistant turn (with the
generation prompt) must be a prefix of the text through that turn; the tokens in between are
the trained ones. The mask is never derived from pad ids (pad is often the same id as EOS).

Models without a chat template use `DEFAULT_TEMPLATE` (ChatML, as SmolLM2 uses, with no
default system prompt).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from .records import Conversation

IGNORE = -100  # label of a position that is not trained (PyTorch's cross-entropy ignore_index)

DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplateError(ValueError):
    """The chat template does not render conversations prefix-consistently."""


class DataWarning(UserWarning):
    """An example was truncated or dropped while encoding."""


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The chat-templated text of `messages` (the tokenizer's template, else the default)."""
    template = None if getattr(tokenizer, "chat_template", None) else DEFAULT_TEMPLATE
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def _segments(tokenizer, conv: Conversation) -> list[tuple[str, bool]]:
    """Split the rendered conversation into (text, trained) pieces, in order."""
    msgs = conv.messages()
    pieces, done = [], ""
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prompt = render(tokenizer, msgs[:i], add_generation_prompt=True)
        full = render(tokenizer, msgs[: i + 1])
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise TemplateError("the chat template does not render the prompt as a prefix of "
                                "prompt + response, so the response tokens cannot be found; "
                                "use a model whose template is prefix-consistent (e.g. ChatML)")
        pieces += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    if not pieces:  # a prompt-only record: everything is context
        pieces = [(render(tokenizer, msgs, add_generation_prompt=True), False)]
    return [(text, trained) for text, trained in pieces if text]


@dataclass
class Encoded:
    """One tokenised example: `labels[i]` is `input_ids[i]` where trained, else IGNORE."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def n_trained(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def encode(conv: Conversation, tokenizer, max_length: int | None = None,
           completion_only: bool = True) -> Encoded:
    """Tokenise one conversation and build its labels.

    With `completion_only=False` every token is trained (the teaching ablation: plain
    language modelling on the whole text). Truncation keeps the first `max_length` tokens.
    """
    ids: list[int] = []
    labels: list[int] = []
    for text, trained in _segments(tokenizer, conv):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if (trained or not completion_only) else [IGNORE] * len(piece)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return Encoded(ids, labels, truncated)


def encode_dataset(convs: list[Conversation], tokenizer, max_length: int | None = None,
                   completion_only: bool = True) -> tuple[list[Encoded], list[str]]:
    """Encode every trainable conversation; return the kept examples and notes for a person.

    Truncated examples are kept (noted); examples with no trained token left are dropped (noted).
    Each note is also issued as a `DataWarning`.
    """
    kept, notes = [], []
    for i, conv in enumerate(convs):
        if not conv.is_trainable:
            notes.append(f"example {i + 1} has no assistant reply and was skipped")
            continue
        enc = encode(conv, tokenizer, max_length, completion_only)
        if enc.n_trained == 0:
            notes.append(f"example {i + 1} has no response token left within max_length="
                         f"{max_length} and was dropped; raise max_length or shorten the prompt")
            continue
        if enc.truncated:
            notes.append(f"example {i + 1} was cut to max_length={max_length} tokens")
        kept.append(enc)
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=2)
    return kept, notes


def token_preview(conv: Conversation, tokenizer, max_length: int | None = None,
                  completion_only: bool = True) -> list[tuple[str, bool]]:
    """The rendered text as (token text, trained?) pairs, for the widgets' mask preview."""
    enc = encode(conv, tokenizer, max_length, completion_only)
    return [(tokenizer.decode([t]), label != IGNORE) for t, label in zip(enc.input_ids, enc.labels)]


def collate(batch: list[Encoded], pad_id: int) -> dict:
    """Right-pad a batch to its longest example; padding is never trained nor attended.

    >>> b = collate([Encoded([5, 6, 7], [IGNORE, 6, 7]), Encoded([8, 9], [IGNORE, 9])], pad_id=0)
    >>> b["input_ids"].tolist(), b["attention_mask"].tolist()
    ([[5, 6, 7], [8, 9, 0]], [[1, 1, 1], [1, 1, 0]])
    >>> b["labels"].tolist()
    [[-100, 6, 7], [-100, 9, -100]]
    """
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
