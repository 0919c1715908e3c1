"""Reading and writing datasets: files and containers of records in, records out, JSONL back.

Containers: `.jsonl`, `.json`, `.csv`, `.parquet`, `.txt` (one text record per paragraph), a
folder saved by `datasets`' `save_to_disk`, a `datasets.Dataset`, or a list of dicts; each
record in any format `lab.data.formats` reads.

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
from typing import Iterable, Iterator

from .. import atomic
from .formats import kind_of, parse_record, show_keys
from ..records import DataError, Record

SUPPORTED = (".jsonl", ".json", ".csv", ".txt", ".parquet")
_CONTAINER_KEYS = ("data", "examples", "train")  # where a .json object may keep its list
_JSON_COLUMNS = ("messages", "conversations", "instances", "chosen", "rejected", "tools")  # CSV cells holding JSON


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
                        f"'data', 'examples' or 'train'; found keys: {show_keys(data)}",
                        source=source)
    if not isinstance(data, list):
        raise DataError(f"expected a list of records, got {kind_of(data)}", source=source)
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
