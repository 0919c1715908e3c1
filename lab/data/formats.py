"""One record, in any format people bring, into the lab's record types (`lab.records`).

Formats: Alpaca (`instruction`, `input`, `output`), Dolly (`instruction`, `context`,
`response`), prompt/completion (strings, or message lists as TRL uses), chat `messages`
(`role`/`content`; OpenAI content parts `[{"type": "text", ...}]` are joined as written),
ShareGPT `conversations` (`from`/`value`), Self-Instruct seed tasks (`instruction`,
`instances`) and plain text (`{"text": ...}`, a `TextRecord`, trained with the pre-training
objective). Files and containers of records are `lab.data.dataio`'s.

Data made for other objectives, and what the lab does with it:
- tool turns (ShareGPT `function_call`/`observation`, OpenAI `tool_calls` and `tool` messages,
  with the tool definitions in `tools`) are kept as such; they are rendered by the model's chat
  template where it renders tools, and refused (`lab.masks.TemplateError`, naming the example
  and the turn) where it does not, e.g. the default model's;
- `"label": false` (KTO-style, also `kto_tag`) marks an undesirable reply: the record is read
  (`Conversation.undesirable`) and the trainer leaves it out unless asked to include it;
- preference pairs (`chosen`/`rejected`, as DPO uses) are refused with a message saying so,
  unless `preference="chosen"` asks for the chosen replies to be trained;
- records with media (`images`, `videos`, `audios`) are refused: the lab trains text models.

Anything wrong with a record raises `DataError` saying what is wrong, for a person.
"""
from __future__ import annotations

import json
from typing import NamedTuple

from ..records import Conversation, DataError, Record, TextRecord, ToolCall, Turn, order_problem

PREFERENCES = ("chosen",)  # which reply of a preference pair can be trained
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant", "function_call": "assistant", "observation": "tool",
                   "tool": "tool"}
_CHAT_ROLES = {"system": "system", "user": "user", "assistant": "assistant", "tool": "tool",
               "function": "tool"}
_FORMAT_KEYS = ("messages", "conversations", "instruction", "prompt", "chosen", "rejected")
_MEDIA_KEYS = ("images", "videos", "audios", "image", "video", "audio")


class _Msg(NamedTuple):
    role: str                       # system, user, assistant or tool
    text: str
    label: str                      # how a message names it: "message 2 in 'messages'"
    calls: tuple[ToolCall, ...] = ()


def parse_record(obj, *, source: str | None = None, where: str | None = None,
                 preference: str | None = None) -> Record:
    """Turn one record, in any supported format, into a `Conversation` or a `TextRecord`.

    `source` (the file) and `where` ("line 7") go into any `DataError` and into `meta`,
    so later warnings can point back at the file. A missing `output`/`completion`, or
    messages ending on a user turn, give a prompt-only record (validation warns about it).
    `preference="chosen"` reads a preference pair as its prompt and chosen reply.

    >>> parse_record({"instruction": "Add", "input": "2 + 2", "output": "4"})
    Conversation(turns=(Turn(role='user', content='Add\\n\\n2 + 2', tool_calls=()), Turn(role='assistant', content='4', tool_calls=())), system=None, tags=(), id=None, tools=None, undesirable=False, meta={})
    >>> parse_record({"prompt": "Hi", "completion": 3}, source="a.jsonl", where="line 2")
    Traceback (most recent call last):
    ...
    lab.records.DataError: a.jsonl, line 2: 'completion' must be a string or a list of messages, got a number
    >>> parse_record({"text": "Once upon a time"})
    TextRecord(text='Once upon a time', tags=(), id=None, meta={})
    """
    if isinstance(obj, (Conversation, TextRecord)):
        return obj
    if preference not in (None, *PREFERENCES):
        raise ValueError(f"preference must be None or one of {PREFERENCES}, not {preference!r}")
    try:
        if not isinstance(obj, dict):
            raise DataError(f"expected an object with the record's fields, got {kind_of(obj)}")
        fields = {k: v for k, v in obj.items() if v is not None}  # null = absent, as in datasets
        _refuse_media(fields)
        meta = {k: v for k, v in (("source", source), ("where", where)) if v}
        if "chosen" in fields or "rejected" in fields:
            messages = _preference(fields, preference)
        elif "text" in fields and not any(k in fields for k in _FORMAT_KEYS):
            return _text_record(fields, meta)
        else:
            messages = _messages(fields)
        return _conversation(messages, fields, meta)
    except DataError as e:
        raise DataError(e.message, source=source, where=where) from None


def _refuse_media(obj: dict) -> None:
    for key in _MEDIA_KEYS:
        if obj.get(key) not in (None, [], ""):
            raise DataError(f"has '{key}': the lab trains text-only language models, so a record with "
                            "media cannot be trained (its media markers would be learned as plain text); "
                            f"leave out the records with media, or their '{key}' field")


def _text_record(obj: dict, meta: dict) -> TextRecord:
    """`{"text": ...}`: plain text for the pre-training objective."""
    if "label" in obj:
        raise DataError("has 'text' and 'label', like a classification dataset; the lab trains on text "
                        "(the pre-training objective) or on conversations: drop 'label' to train on the text")
    return TextRecord(_text(obj, "text"), tags=_tags(obj), id=_id(obj), meta=meta)


def _messages(obj: dict) -> list[_Msg]:
    """The record's messages, read by the record's format."""
    if "messages" in obj:
        return _message_list(obj["messages"], "messages")
    if "conversations" in obj:
        return _message_list(obj["conversations"], "conversations")
    if "instruction" in obj and "instances" in obj:
        return _seed_task(obj)
    if "instruction" in obj:
        return _instruction(obj)
    if "prompt" in obj:
        return _prompt_completion(obj)
    raise DataError("no known format: expected one of 'messages', 'conversations', "
                    "'instruction'+'output', 'prompt'+'completion', 'text'; found keys: "
                    f"{show_keys(obj)}")


def _instruction(obj: dict) -> list[_Msg]:
    """Alpaca (`input`, `output`) or Dolly (`context`, `response`); the input follows the
    instruction after a blank line, as in Alpaca's own prompt."""
    in_key = "context" if "context" in obj and "input" not in obj else "input"
    out_key = "response" if "response" in obj and "output" not in obj else "output"
    user = _join(_text(obj, "instruction"), _text(obj, in_key, optional=True))
    msgs = [_Msg("user", user, "'instruction'")]
    if out_key in obj:
        msgs.append(_Msg("assistant", _text(obj, out_key), f"'{out_key}'"))
    return msgs


def _seed_task(obj: dict) -> list[_Msg]:
    """Self-Instruct seed task: the instruction with its first instance."""
    instances = obj["instances"]
    if not isinstance(instances, list):
        raise DataError(f"'instances' must be a list of {{input, output}} objects, got {kind_of(instances)}")
    if not instances:
        raise DataError("'instances' is empty; a seed task needs at least one {input, output}")
    first = instances[0]
    if not isinstance(first, dict):
        raise DataError(f"'instances' item 1 must be an object with 'input' and 'output', got {kind_of(first)}")
    user = _join(_text(obj, "instruction"), _text(first, "input", optional=True, label="'instances' item 1"))
    return [_Msg("user", user, "'instruction'"),
            _Msg("assistant", _text(first, "output", label="'instances' item 1"), "'output'")]


def _prompt_completion(obj: dict) -> list[_Msg]:
    """Prompt and completion, each a string or (TRL conversational style) a message list."""
    msgs: list[_Msg] = []
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        if key in obj:
            msgs += _side(obj[key], key, role)
    return msgs


def _side(value, key: str, role: str) -> list[_Msg]:
    """One side of a record (prompt, completion, chosen...): a string is one message from
    `role`; a list is messages (chat or ShareGPT keys); an object is one such message."""
    if isinstance(value, str):
        return [_Msg(role, _checked(value, f"'{key}'"), f"'{key}'")]
    if isinstance(value, dict):
        return _message_list([value], key)
    if isinstance(value, list):
        return _message_list(value, key)
    raise DataError(f"'{key}' must be a string or a list of messages, got {kind_of(value)}")


def _preference(obj: dict, preference: str | None) -> list[_Msg]:
    """A preference pair (DPO): refused, or read as its prompt and chosen reply."""
    if preference is None:
        raise DataError("is a preference record ('chosen' and 'rejected' replies, as DPO uses); SFT "
                        "learns one reply per prompt: to fine-tune on the chosen replies pass "
                        "--preference chosen (Python: read_dataset(..., preference=\"chosen\")), or train "
                        "the pairs with DPO (e.g. TRL's DPOTrainer)")
    if "chosen" not in obj:
        raise DataError("is a preference record with 'rejected' but no 'chosen' reply")
    for key in ("prompt", "conversations", "messages"):
        if key in obj:
            prompt = _side(obj[key], key, "user")
            break
    else:  # TRL's implicit prompt: `chosen` is the whole conversation
        if isinstance(obj["chosen"], str):
            raise DataError("'chosen' is plain text and there is no 'prompt', so the prompt cannot be told "
                            "from the reply; give the prompt in 'prompt', or 'chosen' as a list of messages")
        prompt = []
    return prompt + _side(obj["chosen"], "chosen", "assistant")


def _message_list(items, key: str) -> list[_Msg]:
    """Check a list of chat (`role`/`content`) or ShareGPT (`from`/`value`) messages."""
    sharegpt = key == "conversations"  # the style to expect; each message's own keys decide
    if not isinstance(items, list):
        keys = "{from, value}" if sharegpt else "{role, content}"
        raise DataError(f"'{key}' must be a list of {keys} objects, got {kind_of(items)}")
    return [_message(item, f"message {n} in '{key}'", sharegpt) for n, item in enumerate(items, 1)]


def _message(item, label: str, sharegpt: bool) -> _Msg:
    """One message: chat (`role`, `content`, `tool_calls`) or ShareGPT (`from`, `value`)."""
    if isinstance(item, dict) and ("from" in item) != ("role" in item):
        sharegpt = "from" in item
    role_key, text_key, roles = ("from", "value", _SHAREGPT_ROLES) if sharegpt else ("role", "content", _CHAT_ROLES)
    if not isinstance(item, dict):
        raise DataError(f"{label} must be an object with '{role_key}' and '{text_key}', got {kind_of(item)}")
    item = {k: v for k, v in item.items() if v is not None or k == text_key}  # null = absent, but content
    if role_key not in item:
        raise DataError(f"{label} has no '{role_key}'")
    role = item[role_key]
    if not isinstance(role, str) or role not in roles:
        known = ", ".join(f"'{r}'" for r in roles)
        shown = f"'{_show(role)}'" if isinstance(role, str) else kind_of(role)
        raise DataError(f"{label} has '{role_key}': {shown}; expected one of {known}")
    if sharegpt and role == "function_call":
        return _Msg("assistant", "", label, _calls(_loads_value(item, text_key, label), label))
    calls = item.get("tool_calls", [item["function_call"]] if "function_call" in item else [])
    calls = _calls(calls, label) if roles[role] == "assistant" else _no_calls(calls, label)
    if text_key not in item or (item[text_key] is None and calls):
        if not calls:
            raise DataError(f"{label} has no '{text_key}'")
        return _Msg("assistant", "", label, calls)
    value = item[text_key]
    text = _parts(value, label) if isinstance(value, list) else _text(item, text_key, label=label)
    return _Msg(roles[role], text, label, calls)


def _parts(parts: list, label: str) -> str:
    """OpenAI content parts: the text parts joined as written (as chat templates that take parts
    render them); anything else (images, audio, files) is refused."""
    texts = []
    for n, part in enumerate(parts, 1):
        part_type = part.get("type") if isinstance(part, dict) else None
        if part_type == "text" and isinstance(part.get("text"), str):
            texts.append(_checked(part["text"], f"{label}: content part {n}"))
        elif part_type == "text":
            raise DataError(f"{label}: content part {n} has type 'text' but no 'text' string")
        elif isinstance(part_type, str):
            raise DataError(f"{label}: content part {n} is of type '{_show(part_type)}'; the lab trains on text "
                            "only: leave out the record, or put the part's content in words")
        else:
            raise DataError(f"{label}: content part {n} must be an object with a 'type', got {kind_of(part)}")
    return "".join(texts)


def _loads_value(item: dict, key: str, label: str):
    """A ShareGPT `function_call` value: the call(s) as JSON text."""
    value = item.get(key)
    if not isinstance(value, str):
        raise DataError(f"{label}: a 'function_call' value must be JSON text of the call, got {kind_of(value)}")
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        raise DataError(f"{label}: a 'function_call' value must be JSON text like "
                        '{"name": ..., "arguments": {...}}') from None


def _calls(calls, label: str) -> tuple[ToolCall, ...]:
    """Tool calls: a list (or one) of `{"name", "arguments"}`, bare or under `function`."""
    calls = calls if isinstance(calls, list) else [calls]
    out = []
    for n, call in enumerate(calls, 1):
        what = f"{label}: tool call {n}"
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            call = call["function"]
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise DataError(f"{what} must be an object with a 'name' and 'arguments'")
        args = call.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except (ValueError, RecursionError):
                raise DataError(f"{what}: 'arguments' is not valid JSON") from None
        if not isinstance(args, dict):
            raise DataError(f"{what}: 'arguments' must be an object, got {kind_of(args)}")
        out.append(ToolCall(_checked(call["name"], what), _checked(json.dumps(args, ensure_ascii=False), what)))
    return tuple(out)


def _no_calls(calls, label: str) -> tuple:
    if calls:
        raise DataError(f"{label} has tool calls, but only assistant messages call tools")
    return ()


def _conversation(messages: list[_Msg], obj: dict, meta: dict) -> Conversation:
    """Build the Conversation: a system text (field or leading message), then the turns."""
    system = _text(obj, "system", optional=True) or None
    if messages and messages[0].role == "system":
        if system is not None:
            raise DataError("has both a 'system' field and a system message; keep one")
        system = messages.pop(0).text or None
    if not messages:
        raise DataError("has no user message; a record needs at least one")
    for m in messages:
        if m.role == "system":
            raise DataError(f"{m.label} is a system message; only the first message may be one")
    turns = tuple(Turn(m.role, m.text, m.calls) for m in messages)
    problem = order_problem(turns)
    if problem:
        raise DataError(f"{messages[problem[0]].label} {problem[1]}")
    return Conversation(turns, system=system, tags=_tags(obj), id=_id(obj), tools=_tools(obj),
                        undesirable=_undesirable(obj), meta=meta)


def _tools(obj: dict) -> str | None:
    """The tool definitions (a list, or JSON text of one, as LLaMA-Factory writes) as JSON text."""
    tools = obj.get("tools")
    if isinstance(tools, str):
        if not tools.strip():
            return None
        try:
            tools = json.loads(tools)
        except (ValueError, RecursionError):
            raise DataError("'tools' is text but not valid JSON; give a list of tool definitions") from None
    if tools is None or tools == []:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise DataError(f"'tools' must be a list of tool definitions (objects), got {kind_of(tools)}")
    return _checked(json.dumps(tools, ensure_ascii=False), "'tools'")


def _undesirable(obj: dict) -> bool:
    """KTO-style `label` (or LLaMA-Factory's `kto_tag`): false marks an undesirable reply."""
    for key in ("label", "kto_tag"):
        if key in obj:
            if not isinstance(obj[key], bool):
                raise DataError(f"'{key}' must be true or false (false marks an undesirable reply), "
                                f"got {kind_of(obj[key])}")
            return not obj[key]
    return False


def _tags(obj: dict) -> tuple[str, ...]:
    """`tags` (a list of strings or one string) plus `category` (Dolly) as one more tag."""
    tags = obj.get("tags", [])
    if isinstance(tags, str):
        tags = [tags] if tags else []
    if not isinstance(tags, list):
        raise DataError(f"'tags' must be a list of strings or one string, got {kind_of(tags)}")
    for n, t in enumerate(tags, 1):
        if not isinstance(t, str):
            raise DataError(f"'tags' must hold strings, but item {n} is {kind_of(t)}")
    category = _text(obj, "category", optional=True)
    if category and category not in tags:
        tags = tags + [category]
    return tuple(_checked(t, "'tags'") for t in tags)


def _id(obj: dict) -> str | None:
    """`id`, or a seed task's readable `name`; numbers are kept as text."""
    key = "name" if "instances" in obj and "name" in obj else "id"
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is not None and not isinstance(value, str):
        raise DataError(f"'{key}' must be a string or an integer, got {kind_of(value)}")
    return _checked(value, f"'{key}'") if value else None


def _text(obj: dict, key: str, *, optional: bool = False, label: str | None = None) -> str:
    """obj[key] as a string; an optional one missing or null gives ''."""
    where = f"{label}: " if label else ""
    value = obj.get(key)
    if value is None and optional:
        return ""
    if key not in obj:
        raise DataError(f"{where}'{key}' is missing")
    if not isinstance(value, str):
        raise DataError(f"{where}'{key}' must be a string, got {kind_of(value)}")
    return _checked(value, f"{where}'{key}'")


def _checked(text: str, label: str) -> str:
    """`text`, if it can be written as UTF-8 (JSON allows lone surrogates; tokenizers don't)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{label} contains an unpaired surrogate, which is not valid Unicode") from None
    return text


def _join(instruction: str, extra: str) -> str:
    return f"{instruction}\n\n{extra}" if extra else instruction


def _show(text: str, limit: int = 40) -> str:
    """Text from the data, made safe to print in a message: short, no lone surrogates."""
    text = text if len(text) <= limit else text[:limit] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def show_keys(obj: dict, limit: int = 10) -> str:
    keys = [_show(str(k)) for k in list(obj)[:limit]] + (["..."] if len(obj) > limit else [])
    return ", ".join(keys) or "none"


def kind_of(value) -> str:
    """How a person names a JSON value's type: 'a list', 'a number', 'null'..."""
    if value is None:
        return "null"
    for types, name in ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"),
                        ((list, tuple), "a list"), (dict, "an object")):
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"
