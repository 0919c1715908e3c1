"""Reading and writing datasets: every format people have in, records out, JSONL back.

Formats (one record each): Alpaca (`instruction`, `input`, `output`), Dolly (`instruction`,
`context`, `response`), prompt/completion (strings, or message lists as TRL uses), chat
`messages` (`role`/`content`; OpenAI content parts `[{"type": "text", ...}]` are joined),
ShareGPT `conversations` (`from`/`value`), Self-Instruct seed tasks (`instruction`,
`instances`) and plain text (`{"text": ...}`, a `TextRecord`, trained with the pre-training
objective). Containers: `.jsonl`, `.json`, `.csv`, `.parquet`, `.txt` (one text record per
paragraph), a folder saved by `datasets`' `save_to_disk`, a `datasets.Dataset`, or a list of dicts.

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

Anything wrong with the data raises `DataError` naming the file, the line (JSONL, TXT), record
(JSON, lists, parquet, datasets) or row (CSV, header = row 1, as a spreadsheet shows it) and
what is wrong; the readers raise nothing else, whatever the file holds.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from lab import atomic
from lab.records import Conversation, DataError, Record, TextRecord, ToolCall, Turn, order_problem

SUPPORTED = (".jsonl", ".json", ".csv", ".txt", ".parquet")
PREFERENCES = ("chosen",)  # which reply of a preference pair can be trained
_CONTAINER_KEYS = ("data", "examples", "train")  # where a .json object may keep its list
_JSON_COLUMNS = ("messages", "conversations", "instances", "chosen", "rejected", "tools")  # CSV cells holding JSON
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


# ---------------------------------------------------------------------------- one record

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
            raise DataError(f"expected an object with the record's fields, got {_kind(obj)}")
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
                    f"{_show_keys(obj)}")


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
        raise DataError(f"'instances' must be a list of {{input, output}} objects, got {_kind(instances)}")
    if not instances:
        raise DataError("'instances' is empty; a seed task needs at least one {input, output}")
    first = instances[0]
    if not isinstance(first, dict):
        raise DataError(f"'instances' item 1 must be an object with 'input' and 'output', got {_kind(first)}")
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
    raise DataError(f"'{key}' must be a string or a list of messages, got {_kind(value)}")


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
        raise DataError(f"'{key}' must be a list of {keys} objects, got {_kind(items)}")
    return [_message(item, f"message {n} in '{key}'", sharegpt) for n, item in enumerate(items, 1)]


def _message(item, label: str, sharegpt: bool) -> _Msg:
    """One message: chat (`role`, `content`, `tool_calls`) or ShareGPT (`from`, `value`)."""
    if isinstance(item, dict) and ("from" in item) != ("role" in item):
        sharegpt = "from" in item
    role_key, text_key, roles = ("from", "value", _SHAREGPT_ROLES) if sharegpt else ("role", "content", _CHAT_ROLES)
    if not isinstance(item, dict):
        raise DataError(f"{label} must be an object with '{role_key}' and '{text_key}', got {_kind(item)}")
    item = {k: v for k, v in item.items() if v is not None or k == text_key}  # null = absent, but content
    if role_key not in item:
        raise DataError(f"{label} has no '{role_key}'")
    role = item[role_key]
    if not isinstance(role, str) or role not in roles:
        known = ", ".join(f"'{r}'" for r in roles)
        shown = f"'{_show(role)}'" if isinstance(role, str) else _kind(role)
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
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(_checked(part["text"], f"{label}: content part {n}"))
        elif kind == "text":
            raise DataError(f"{label}: content part {n} has type 'text' but no 'text' string")
        elif isinstance(kind, str):
            raise DataError(f"{label}: content part {n} is of type '{_show(kind)}'; the lab trains on text "
                            "only: leave out the record, or put the part's content in words")
        else:
            raise DataError(f"{label}: content part {n} must be an object with a 'type', got {_kind(part)}")
    return "".join(texts)


def _loads_value(item: dict, key: str, label: str):
    """A ShareGPT `function_call` value: the call(s) as JSON text."""
    value = item.get(key)
    if not isinstance(value, str):
        raise DataError(f"{label}: a 'function_call' value must be JSON text of the call, got {_kind(value)}")
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
            raise DataError(f"{what}: 'arguments' must be an object, got {_kind(args)}")
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
        raise DataError(f"'tools' must be a list of tool definitions (objects), got {_kind(tools)}")
    return _checked(json.dumps(tools, ensure_ascii=False), "'tools'")


def _undesirable(obj: dict) -> bool:
    """KTO-style `label` (or LLaMA-Factory's `kto_tag`): false marks an undesirable reply."""
    for key in ("label", "kto_tag"):
        if key in obj:
            if not isinstance(obj[key], bool):
                raise DataError(f"'{key}' must be true or false (false marks an undesirable reply), "
                                f"got {_kind(obj[key])}")
            return not obj[key]
    return False


def _tags(obj: dict) -> tuple[str, ...]:
    """`tags` (a list of strings or one string) plus `category` (Dolly) as one more tag."""
    tags = obj.get("tags", [])
    if isinstance(tags, str):
        tags = [tags] if tags else []
    if not isinstance(tags, list):
        raise DataError(f"'tags' must be a list of strings or one string, got {_kind(tags)}")
    for n, t in enumerate(tags, 1):
        if not isinstance(t, str):
            raise DataError(f"'tags' must hold strings, but item {n} is {_kind(t)}")
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
        raise DataError(f"'{key}' must be a string or an integer, got {_kind(value)}")
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
        raise DataError(f"{where}'{key}' must be a string, got {_kind(value)}")
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


def _show_keys(obj: dict, limit: int = 10) -> str:
    keys = [_show(str(k)) for k in list(obj)[:limit]] + (["..."] if len(obj) > limit else [])
    return ", ".join(keys) or "none"


def _kind(value) -> str:
    """How a person names a JSON value's type: 'a list', 'a number', 'null'..."""
    if value is None:
        return "null"
    for types, name in ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"),
                        ((list, tuple), "a list"), (dict, "an object")):
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------------- containers

def read_dataset(path_or_obj, *, preference: str | None = None) -> list[Record]:
    """Read a dataset: a `.jsonl`/`.json`/`.csv`/`.parquet`/`.txt` path, a folder saved with
    `datasets`' `save_to_disk`, a `datasets.Dataset` (or the "train" split of a `DatasetDict`),
    or a list of records. `preference="chosen"` trains preference pairs' chosen replies.
    Raises `DataError` and nothing else."""
    if type(path_or_obj).__module__.split(".")[0] == "datasets":  # no import of `datasets` needed
        rows = _numbered(_hf_split(path_or_obj), "record")
        return _parse_all(rows, "Hugging Face dataset", preference)
    if isinstance(path_or_obj, (list, tuple)):
        return _parse_all(_numbered(path_or_obj, "record"), None, preference)
    if isinstance(path_or_obj, (str, os.PathLike)):
        return _read_path(Path(path_or_obj), preference)
    raise DataError("expected a file path, a list of records or a datasets.Dataset, "
                    f"got {type(path_or_obj).__name__}")


def read_text(text: str, fmt: str, source: str = "upload", *,
              preference: str | None = None) -> list[Record]:
    """Read a dataset from text already in memory (e.g. a file uploaded in the browser).

    `fmt` is the file type ("jsonl", "json", "csv" or "txt", a leading dot allowed); `source`
    names the data in error messages, as a path does for `read_dataset`.
    """
    suffix = "." + fmt.lower().lstrip(".")
    if suffix not in SUPPORTED or suffix == ".parquet":
        supported = ", ".join(s for s in SUPPORTED if s != ".parquet")
        raise DataError(f"unsupported file type '{fmt}' for text; supported: {supported}", source=source)
    text = text.removeprefix("\ufeff")
    rows = {".jsonl": lambda: _jsonl_rows(text, source),
            ".json": lambda: _numbered(_json_rows(text, source), "record"),
            ".csv": lambda: _csv_rows(text, source),
            ".txt": lambda: _txt_rows(text)}[suffix]()
    return _parse_all(rows, source, preference)


def write_jsonl(path: str | os.PathLike, records: Iterable[Record]) -> Path:
    """Write records as JSONL (`to_json()` each), atomically: the whole file or nothing."""
    return atomic.write_jsonl(path, (r.to_json() for r in records))


def _hf_split(ds):
    """A `Dataset` as is; a `DatasetDict`'s "train" split."""
    if isinstance(ds, dict):
        if "train" not in ds:
            raise DataError(f"the DatasetDict has no 'train' split; it has: {', '.join(map(str, ds))}")
        return ds["train"]
    return ds


def _read_path(path: Path, preference: str | None) -> list[Record]:
    source = str(path)
    if path.is_dir():
        return _parse_all(_numbered(_hf_split(_load_from_disk(path)), "record"), source, preference)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise DataError(f"unsupported file type '{path.suffix}'; supported: {', '.join(SUPPORTED)}, "
                        "or a folder saved with datasets' save_to_disk", source=source)
    if suffix == ".parquet":
        return _parse_all(_numbered(_parquet_rows(path), "record"), source, preference)
    return read_text(_read_text(path), suffix, source, preference=preference)


def _load_from_disk(path: Path):
    """A folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    if not any((path / name).is_file() for name in ("dataset_info.json", "state.json", "dataset_dict.json")):
        raise DataError("is a folder, but not a dataset saved with datasets' save_to_disk "
                        "(no dataset_info.json or dataset_dict.json in it)", source=str(path))
    try:
        import datasets
    except ImportError:
        raise DataError("is a saved Hugging Face dataset; reading it needs the `datasets` package "
                        "(pip install datasets)", source=str(path)) from None
    try:
        return datasets.load_from_disk(str(path))
    except Exception as e:  # whatever datasets raises for a damaged folder, said in one line
        raise DataError(f"cannot be read as a saved dataset: {_first_line(e)}", source=str(path)) from None


def _parquet_rows(path: Path) -> list:
    """The rows of a parquet file as dicts (nested columns as lists and dicts)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading parquet needs the `pyarrow` package (pip install pyarrow)",
                        source=str(path)) from None
    try:
        return pq.read_table(path).to_pylist()
    except FileNotFoundError:
        raise DataError("file not found", source=str(path)) from None
    except Exception as e:  # pyarrow's errors for a file that is not parquet, said in one line
        raise DataError(f"cannot be read as parquet: {_first_line(e)}", source=str(path)) from None


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, a leading BOM dropped), or a DataError saying why not."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", source=str(path)) from None
    except PermissionError:
        raise DataError("permission denied", source=str(path)) from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise DataError(f"cannot be read: {getattr(e, 'strerror', None) or e}", source=str(path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"not valid UTF-8 text (byte 0x{data[e.start]:02x}); save it as UTF-8",
                        source=str(path), where=f"line {line}") from None


def _numbered(rows: Iterable, unit: str) -> Iterator[tuple[str, object]]:
    return ((f"{unit} {n}", row) for n, row in enumerate(rows, 1))


def _parse_all(rows: Iterable[tuple[str, object]], source: str | None,
               preference: str | None) -> list[Record]:
    """Parse (where, record) pairs; an empty dataset is an error too."""
    out = [parse_record(row, source=source, where=where, preference=preference) for where, row in rows]
    if not out:
        raise DataError("the dataset is empty (no records)", source=source)
    return out


def _jsonl_rows(text: str, source: str) -> Iterator[tuple[str, object]]:
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON strings may hold U+2028
        if line.strip():
            yield f"line {n}", _loads(line, source, f"line {n}")


def _txt_rows(text: str) -> Iterator[tuple[str, dict]]:
    """Plain text: one text record per paragraph (lines up to a blank line), numbered by the
    line it starts on.

    >>> list(_txt_rows("One.\\nStill one.\\n\\n\\nTwo.\\n"))
    [('line 1', {'text': 'One.\\nStill one.'}), ('line 5', {'text': 'Two.'})]
    """
    lines: list[str] = []
    start = 0
    for n, line in enumerate(text.split("\n") + [""], 1):
        if line.strip():
            start = start or n
            lines.append(line.rstrip("\r"))
        elif lines:
            yield f"line {start}", {"text": "\n".join(lines)}
            lines, start = [], 0


def _json_rows(text: str, source: str) -> list:
    data = _loads(text, source, None)
    if isinstance(data, dict):
        for key in _CONTAINER_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
        raise DataError("expected a list of records, or an object with the list under "
                        f"'data', 'examples' or 'train'; found keys: {_show_keys(data)}",
                        source=source)
    if not isinstance(data, list):
        raise DataError(f"expected a list of records, got {_kind(data)}", source=source)
    return data


def _loads(text: str, source: str, where: str | None):
    """json.loads with every failure turned into a DataError (position given for a person)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        place = f"column {e.colno}" if where else f"line {e.lineno} column {e.colno}"
        raise DataError(f"not valid JSON: {e.msg} at {place}", source=source, where=where) from None
    except RecursionError:
        raise DataError("not valid JSON for the lab: nested too deeply", source=source, where=where) from None
    except ValueError as e:  # e.g. an integer with too many digits
        raise DataError(f"not valid JSON: {e}", source=source, where=where) from None


def _csv_rows(text: str, source: str) -> Iterator[tuple[str, dict]]:
    """Rows as dicts, numbered as a spreadsheet shows them (the header is row 1)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        for row_n, cells in enumerate(reader, 2):
            if not any(cells):
                continue
            if len(cells) != len(header):
                raise DataError(f"has {len(cells)} cells but the header has {len(header)}",
                                source=source, where=f"row {row_n}")
            yield f"row {row_n}", _csv_record(dict(zip(header, cells)), source, row_n)
    except csv.Error as e:
        raise DataError(f"cannot be read as CSV: {e}", source=source, where=f"line {reader.line_num}") from None


def _csv_record(row: dict, source: str, row_n: int) -> dict:
    """Decode the JSON-text columns (and a `tags` cell holding a JSON list); empty cells are absent."""
    for key in _JSON_COLUMNS:
        if key in row:
            cell = row[key]
            row[key] = _loads(cell, source, f"row {row_n} column '{key}'") if cell.strip() else None
    if row.get("tags", "").lstrip().startswith("["):
        row["tags"] = _loads(row["tags"], source, f"row {row_n} column 'tags'")
    for key in ("label", "kto_tag"):  # a spreadsheet's TRUE/FALSE
        if row.get(key, "").strip().lower() in ("true", "false"):
            row[key] = row[key].strip().lower() == "true"
        elif key in row and not row[key].strip():
            row[key] = None
    return row
