"""The comparison table: each prompt with the replies of several models, side by side.

A row holds the prompt, an optional reference answer, and one column per model ("base",
"tuned", earlier runs) with its reply, a word diff against the first column, and (with a
reference) the reference's NLL under that model. `flatten` and `write_table` turn rows into
a plain table for CSV/JSONL export.

>>> row = make_row("Hi?", {"base": "Hello.", "tuned": "Arr! Hello."})
>>> [(c["name"], c["diff"]) for c in row["columns"]]
[('base', None), ('tuned', [('insert', 'Arr! '), ('equal', 'Hello.')])]
>>> flatten([row])
[{'prompt': 'Hi?', 'base': 'Hello.', 'tuned': 'Arr! Hello.'}]
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ..atomic import write_jsonl, write_text
from .textdiff import similarity, word_diff


def make_row(prompt: str, replies: dict[str, str | None], reference: str | None = None,
             nll: dict[str, float] | None = None) -> dict:
    """One table row; columns in the order of `replies`, each diffed against the first.

    A reply of None means "not recorded" (an earlier run never answered this prompt) and
    gets no diff.
    """
    first = next(iter(replies.values()), "") or ""
    columns = []
    for n, (name, reply) in enumerate(replies.items()):
        compared = n > 0 and reply is not None
        columns.append({"name": name, "reply": reply,
                        "diff": word_diff(first, reply) if compared else None,
                        "similarity": similarity(first, reply) if compared else None,
                        "nll": (nll or {}).get(name)})
    return {"prompt": prompt, "reference": reference, "columns": columns}


def flatten(rows: list[dict]) -> list[dict]:
    """Rows as flat records: prompt, reference (if any), each model's reply and NLL (if any)."""
    out = []
    for row in rows:
        rec = {"prompt": row["prompt"]}
        if row.get("reference") is not None:
            rec["reference"] = row["reference"]
        for col in row["columns"]:
            rec[col["name"]] = col["reply"]
            if col.get("nll") is not None:
                rec[f"{col['name']} nll"] = col["nll"]
        out.append(rec)
    return out


def write_table(path: str | Path, rows: list[dict]) -> Path:
    """Write the table atomically as `.csv` or `.jsonl` (chosen by the file's suffix)."""
    path = Path(path)
    records = flatten(rows)
    if path.suffix.lower() == ".jsonl":
        return write_jsonl(path, records)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"cannot export to '{path.name}': use a file name ending in .csv or .jsonl")
    fields: list[str] = []
    for rec in records:
        fields += [k for k in rec if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return write_text(path, buf.getvalue())
