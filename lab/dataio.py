"""Reading and writing datasets: every format people have in, `Conversation` out, JSONL back.

Formats (one record each): Alpaca (`instruction`, `input`, `output`), Dolly (`instruction`,
`context`, `response`), prompt/completion (strings, or message lists as TRL uses), chat
`messages` (`role`/`content`), ShareGPT `conversations` (`from`/`value`) and Self-Instruct
seed tasks (`instruction`, `instances`). Containers: `.jsonl`, `.json`, `.csv`, a Hugging Face
`datasets.Dataset`, or a list of dicts.

Anything wrong with the data raises `DataError` naming the file, the line (JSONL), record
(JSON, lists, datasets) or row (CSV, header = row 1, as a spreadsheet shows it) and what is
wrong; the readers raise nothing else, whatever the file holds.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from lab import atomic
from lab.records import Conversation, DataError, Turn

SUPPORTED = (".jsonl", ".json", ".csv")
_CONTAINER_KEYS = ("data", "examples", "train")  # where a .json object may keep its list
_JSON_COLUMNS = ("messages", "conversations", "instances")  # CSV cells that hold JSON text
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user",
                   "gpt": "assistant", "assistant": "assistant"}
_CHAT_ROLES = {r: r for r in ("system", "user", "assistant")}


# ---------------------------------------------------------------------------- one record

def parse_record(obj, *, source: str | None = None, where: str | None = None) -> Conversation:
    """Turn one record, in any supported format, into a `Conversation`.

    `source` (the file) and `where` ("line 7") go into any `DataError` and into `meta`,
    so later warnings can point back at the file. A missing `output`/`completion`, or
    messages ending on a user turn, give a prompt-only record (validation warns about it).

    >>> parse_record({"instruction": "Add", "input": "2 + 2", "output": "4"})
    Conversation(turns=(Turn(role='user', content='Add\\n\\n2 + 2'), Turn(role='assistant', content='4')), system=None, tags=(), id=None, meta={})
    >>> parse_record({"prompt": "Hi", "completion": 3}, source="a.jsonl", where="line 2")
    Traceback (most recent call last):
    ...
    lab.records.DataError: a.jsonl, line 2: 'completion' must be a string or a list of messages, got a number
    """
    if isinstance(obj, Conversation):
        return obj
    try:
        if not isinstance(obj, dict):
            raise DataError(f"expected an object with the record's fields, got {_kind(obj)}")
        fields = {k: v for k, v in obj.items() if v is not None}  # null = absent, as in datasets
        return _conversation(_messages(fields), fields, source, where)
    except DataError as e:
        raise DataError(e.message, source=source, where=where) from None


def _messages(obj: dict) -> list[tuple[str, str, str]]:
    """The record's messages as (role, text, label), read by the record's format."""
    if "messages" in obj:
        return _message_list(obj["messages"], "messages", "role", "content", _CHAT_ROLES)
    if "conversations" in obj:
        return _message_list(obj["conversations"], "conversations", "from", "value", _SHAREGPT_ROLES)
    if "instruction" in obj and "instances" in obj:
        return _seed_task(obj)
    if "instruction" in obj:
        return _instruction(obj)
    if "prompt" in obj:
        return _prompt_completion(obj)
    raise DataError("no known format: expected one of 'messages', 'conversations', "
                    f"'instruction'+'output', 'prompt'+'completion'; found keys: {_show_keys(obj)}")


def _instruction(obj: dict) -> list[tuple[str, str, str]]:
    """Alpaca (`input`, `output`) or Dolly (`context`, `response`); the input follows the
    instruction after a blank line, as in Alpaca's own prompt."""
    in_key = "context" if "context" in obj and "input" not in obj else "input"
    out_key = "response" if "response" in obj and "output" not in obj else "output"
    user = _join(_text(obj, "instruction"), _text(obj, in_key, optional=True))
    msgs = [("user", user, "'instruction'")]
    if out_key in obj:
        msgs.append(("assistant", _text(obj, out_key), f"'{out_key}'"))
    return msgs


def _seed_task(obj: dict) -> list[tuple[str, str, str]]:
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
    return [("user", user, "'instruction'"),
            ("assistant", _text(first, "output", label="'instances' item 1"), "'output'")]


def _prompt_completion(obj: dict) -> list[tuple[str, str, str]]:
    """Prompt and completion, each a string or (TRL conversational style) a message list."""
    msgs = []
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        if key not in obj:
            continue
        value = obj[key]
        if isinstance(value, list):
            msgs += _message_list(value, key, "role", "content", _CHAT_ROLES)
        elif isinstance(value, str):
            msgs.append((role, _checked(value, f"'{key}'"), f"'{key}'"))
        else:
            raise DataError(f"'{key}' must be a string or a list of messages, got {_kind(value)}")
    return msgs


def _message_list(items, key: str, role_key: str, text_key: str,
                  roles: dict[str, str]) -> list[tuple[str, str, str]]:
    """Check a list of message objects and return (role, text, label) for each."""
    if not isinstance(items, list):
        raise DataError(f"'{key}' must be a list of {{{role_key}, {text_key}}} objects, got {_kind(items)}")
    out = []
    for n, item in enumerate(items, 1):
        label = f"message {n} in '{key}'"
        if not isinstance(item, dict):
            raise DataError(f"{label} must be an object with '{role_key}' and '{text_key}', got {_kind(item)}")
        for k in (role_key, text_key):
            if k not in item:
                raise DataError(f"{label} has no '{k}'")
        role = item[role_key]
        if not isinstance(role, str) or role not in roles:
            known = ", ".join(f"'{r}'" for r in roles)
            shown = f"'{_show(role)}'" if isinstance(role, str) else _kind(role)
            raise DataError(f"{label} has '{role_key}': {shown}; expected one of {known}")
        out.append((roles[role], _text(item, text_key, label=label), label))
    return out


def _conversation(messages: list[tuple[str, str, str]], obj: dict,
                  source: str | None, where: str | None) -> Conversation:
    """Build the Conversation: a system text (field or leading message), then alternating turns."""
    system = _text(obj, "system", optional=True) or None
    if messages and messages[0][0] == "system":
        if system is not None:
            raise DataError("has both a 'system' field and a system message; keep one")
        system = messages.pop(0)[1] or None
    if not messages:
        raise DataError("has no user message; a record needs at least one")
    for i, (role, _, label) in enumerate(messages):
        want = "user" if i % 2 == 0 else "assistant"
        if role == "system":
            raise DataError(f"{label} is a system message; only the first message may be one")
        if role != want:
            raise DataError(f"{label} is from '{role}' but should be from '{want}' "
                            "(turns alternate user, assistant, starting with user)")
    meta = {k: v for k, v in (("source", source), ("where", where)) if v}
    return Conversation(tuple(Turn(r, t) for r, t, _ in messages), system=system,
                        tags=_tags(obj), id=_id(obj), meta=meta)


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

def read_dataset(path_or_obj) -> list[Conversation]:
    """Read a dataset: a `.jsonl`/`.json`/`.csv` path, a `datasets.Dataset` (or the "train"
    split of a `DatasetDict`), or a list of records. Raises `DataError` and nothing else."""
    if type(path_or_obj).__module__.split(".")[0] == "datasets":  # no import of `datasets` needed
        return _parse_all(_numbered(_hf_split(path_or_obj), "record"), "Hugging Face dataset")
    if isinstance(path_or_obj, (list, tuple)):
        return _parse_all(_numbered(path_or_obj, "record"), None)
    if isinstance(path_or_obj, (str, os.PathLike)):
        return _read_file(Path(path_or_obj))
    raise DataError("expected a file path, a list of records or a datasets.Dataset, "
                    f"got {type(path_or_obj).__name__}")


def read_text(text: str, fmt: str, source: str = "upload") -> list[Conversation]:
    """Read a dataset from text already in memory (e.g. a file uploaded in the browser).

    `fmt` is the file type ("jsonl", "json" or "csv", a leading dot allowed); `source` names
    the data in error messages, as a path does for `read_dataset`.
    """
    suffix = "." + fmt.lower().lstrip(".")
    if suffix not in SUPPORTED:
        raise DataError(f"unsupported file type '{fmt}'; supported: {', '.join(SUPPORTED)}", source=source)
    text = text.removeprefix("\ufeff")
    if suffix == ".jsonl":
        return _parse_all(_jsonl_rows(text, source), source)
    if suffix == ".json":
        return _parse_all(_numbered(_json_rows(text, source), "record"), source)
    return _parse_all(_csv_rows(text, source), source)


def write_jsonl(path: str | os.PathLike, conversations: Iterable[Conversation]) -> Path:
    """Write conversations as chat-`messages` JSONL, atomically: the whole file or nothing."""
    return atomic.write_jsonl(path, (c.to_json() for c in conversations))


def _hf_split(ds):
    """A `Dataset` as is; a `DatasetDict`'s "train" split."""
    if isinstance(ds, dict):
        if "train" not in ds:
            raise DataError(f"the DatasetDict has no 'train' split; it has: {', '.join(map(str, ds))}")
        return ds["train"]
    return ds


def _read_file(path: Path) -> list[Conversation]:
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise DataError(f"unsupported file type '{path.suffix}'; supported: {', '.join(SUPPORTED)}",
                        source=source)
    return read_text(_read_text(path), suffix, source)


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, a leading BOM dropped), or a DataError saying why not."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", source=str(path)) from None
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


def _parse_all(rows: Iterable[tuple[str, object]], source: str | None) -> list[Conversation]:
    """Parse (where, record) pairs; an empty dataset is an error too."""
    out = [parse_record(row, source=source, where=where) for where, row in rows]
    if not out:
        raise DataError("the dataset is empty (no records)", source=source)
    return out


def _jsonl_rows(text: str, source: str) -> Iterator[tuple[str, object]]:
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines: JSON strings may hold U+2028
        if line.strip():
            yield f"line {n}", _loads(line, source, f"line {n}")


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
    return row
