"""Chat template and loss mask: which tokens the model is trained to predict.

SFT maximises the likelihood of the response given the instruction, so only response tokens
(and the end-of-turn token, so the model learns to stop) get a label; prompt tokens get -100.
As in TRL, the mask comes from rendering: the text before each assistant turn (with the
generation prompt) must be a prefix of the text through that turn; the tokens in between are
the trained ones. The mask is never derived from pad ids (pad is often the same id as EOS).

Tool calls are assistant turns (trained); tool results are context, like the user's turns.
They are rendered by the chat template with the record's tool definitions (`tools=`), and a
template that leaves them out (most templates without tool support, the default model's
among them) is refused with a `TemplateError` naming the turn, rather than trained on a
conversation the model would never see whole.

A `TextRecord` is plain text with the pre-training objective: every token is trained (but the
first, which nothing predicts), then the end-of-text token (EOS), so the model learns where a
text ends. No chat template is involved.

Models without a chat template use `DEFAULT_TEMPLATE` (ChatML, as SmolLM2 uses, with no
default system prompt).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from .records import Conversation, Record, TextRecord

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


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False,
           tools: list[dict] | None = None) -> str:
    """The chat-templated text of `messages` (the tokenizer's template, else the default);
    `tools`: the tool definitions, for templates that show them."""
    template = None if getattr(tokenizer, "chat_template", None) else DEFAULT_TEMPLATE
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt, **extra)


def render_prompt(tokenizer, conv: Conversation) -> str:
    """What the model sees before it replies: the conversation up to its last reply, with the
    generation prompt (generation and export use this)."""
    return render(tokenizer, conv.prompt_only().messages(), add_generation_prompt=True,
                  tools=conv.tool_list())


def text_ids(tokenizer, text: str) -> list[int]:
    """Token ids of plain text as pre-training sees it: the tokenizer's own special tokens (a
    BOS where it adds one), the text, then EOS.

    >>> class Chars:  # a toy tokenizer: one id per character, EOS = 0
    ...     eos_token_id = 0
    ...     def __call__(self, text): return {"input_ids": [ord(c) for c in text]}
    >>> text_ids(Chars(), "hi")
    [104, 105, 0]
    """
    ids = list(tokenizer(text)["input_ids"])
    eos = tokenizer.eos_token_id
    return ids + [eos] if eos is not None and ids[-1:] != [eos] else ids


def _segments(tokenizer, conv: Conversation) -> list[tuple[str, bool]]:
    """Split the rendered conversation into (text, trained) pieces, in order."""
    msgs, tools = conv.messages(), conv.tool_list()
    first = len(msgs) - len(conv.turns)  # index of turn 0 in msgs (1 with a system message)
    pieces, done = [], ""
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prompt = render(tokenizer, msgs[:i], add_generation_prompt=True, tools=tools)
        full = render(tokenizer, msgs[: i + 1], tools=tools)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise TemplateError("the chat template does not render the prompt as a prefix of "
                                "prompt + response, so the response tokens cannot be found; "
                                "use a model whose template is prefix-consistent (e.g. ChatML)")
        _check_tool_turns(conv, i - first, prompt[len(done):], full[len(prompt):])
        pieces += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    if not pieces:  # a prompt-only record: everything is context
        pieces = [(render(tokenizer, msgs, add_generation_prompt=True, tools=tools), False)]
    for spec in tools or ():  # the definitions: shown before the first reply
        name = (spec.get("function") if isinstance(spec.get("function"), dict) else spec).get("name")
        if isinstance(name, str) and name not in pieces[0][0]:
            raise TemplateError(f"the record defines the tool '{name}' ('tools'), but the chat template "
                                f"does not show tool definitions{_NO_TOOLS}")
    return [(text, trained) for text, trained in pieces if text]


_NO_TOOLS = ("; use a model whose chat template supports tools (e.g. Qwen2.5-Instruct), "
             "or leave the records with tool turns out")


def _check_tool_turns(conv: Conversation, turn: int, context: str, reply: str) -> None:
    """Refuse a rendering that leaves out the tool calls of assistant turn `turn` (0-based) or
    the tool results just before it: the model would learn from a conversation it never sees
    whole."""
    for call in conv.turns[turn].tool_calls:
        if call.name not in reply:
            raise TemplateError(f"turn {turn + 1} calls the tool '{call.name}' (a 'function_call' or "
                                f"'tool_calls' turn), but the chat template does not render tool calls{_NO_TOOLS}")
    n = turn - 1
    while n >= 0 and conv.turns[n].role == "tool":
        if conv.turns[n].content.strip() and conv.turns[n].content not in context:
            raise TemplateError(f"turn {n + 1} is a tool's result (an 'observation' or 'tool' turn), but the "
                                f"chat template does not render tool results{_NO_TOOLS}")
        n -= 1


@dataclass
class Encoded:
    """One tokenised example: `labels[i]` is `input_ids[i]` where trained, else IGNORE."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def n_trained(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def encode(conv: Record, tokenizer, max_length: int | None = None,
           completion_only: bool = True) -> Encoded:
    """Tokenise one record and build its labels.

    With `completion_only=False` every token of a conversation is trained (the teaching
    ablation: plain language modelling on the whole text); a `TextRecord` always is, but its
    first token (nothing before it predicts it). Truncation keeps the first `max_length` tokens.
    """
    if isinstance(conv, TextRecord):
        ids = text_ids(tokenizer, conv.text)
        labels = [IGNORE] + ids[1:]
    else:
        ids, labels = [], []
        for text, trained in _segments(tokenizer, conv):
            piece = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece if (trained or not completion_only) else [IGNORE] * len(piece)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return Encoded(ids, labels, truncated)


def encode_dataset(convs: list[Record], tokenizer, max_length: int | None = None,
                   completion_only: bool = True) -> tuple[list[Encoded], list[str]]:
    """Encode every trainable record; return the kept examples and notes for a person.

    Truncated examples are kept (noted); examples with no trained token left are dropped (noted).
    Each note is also issued as a `DataWarning`.
    """
    kept, notes = [], []
    for i, conv in enumerate(convs):
        if not conv.is_trainable:
            notes.append(f"example {i + 1} has no assistant reply and was skipped")
            continue
        enc = encode(conv, tokenizer, max_length, completion_only)
        if enc.n_trained == 0 and isinstance(conv, TextRecord):
            notes.append(f"example {i + 1} is an empty text and was dropped")
            continue
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


def token_preview(conv: Record, tokenizer, max_length: int | None = None,
                  completion_only: bool = True) -> list[tuple[str, bool]]:
    """The rendered text as (token text, trained?) pairs, for the widgets' mask preview."""
    enc = encode(conv, tokenizer, max_length, completion_only)
    return [(tokenizer.decode([t]), label != IGNORE) for t, label in zip(enc.input_ids, enc.labels)]


def common_start(rows: list[list[int]], limit: int) -> int:
    """How many leading tokens all `rows` share, at most `limit`.

    >>> common_start([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]], limit=2)
    2
    """
    first, common = rows[0], 0
    while common < limit and all(r[common] == first[common] for r in rows):
        common += 1
    return common


def shared_prefix(batch: list[Encoded]) -> int:
    """How many leading tokens every example of `batch` has in common and predicts nothing
    from: the chat template's system prompt and turn header, which scoring can run once for
    the batch. At most one token short of each example's first target (the position before a
    target is where it is predicted from).

    >>> shared_prefix([Encoded([1, 2, 3, 4, 5], [IGNORE] * 4 + [5]),
    ...                Encoded([1, 2, 3, 7, 8, 9], [IGNORE] * 5 + [9])])
    3
    >>> shared_prefix([Encoded([1, 2, 3], [IGNORE, 2, 3]), Encoded([1, 2, 4], [IGNORE] * 2 + [4])])
    0
    """
    limit = min(next((i for i, label in enumerate(e.labels) if label != IGNORE), len(e.labels)) - 1
                for e in batch)
    return common_start([e.input_ids for e in batch], max(limit, 0))


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
