"""lab.data.dataio: every format into the exact Conversation, every malformed case into a DataError
that names the file and line/record/row, round trips, and fuzzing (DataError or nothing)."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.data.dataio import parse_record, read_dataset, read_text, write_jsonl
from lab.records import Conversation, DataError, TextRecord, ToolCall, Turn

# `make test-fast` sets SFT_LAB_FUZZ_SCALE=0.25: a quarter of the examples (CI runs them all)
SCALE = float(os.environ.get("SFT_LAB_FUZZ_SCALE") or 1)
FUZZ = settings(max_examples=max(10, int(200 * SCALE)), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
ROUND_TRIP = settings(FUZZ, max_examples=max(10, int(100 * SCALE)))  # each example fsyncs a file


def U(text):
    return Turn("user", text)


def A(text):
    return Turn("assistant", text)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def T(text):
    return Turn("tool", text)


def CALL(name, **arguments):
    return Turn("assistant", "", (ToolCall(name, json.dumps(arguments)),))


GOOD = {"instruction": "Say hi", "output": "Hi"}
HI = Conversation((U("Say hi"), A("Hi")))
WEATHER = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]

# ------------------------------------------------------------------------------ formats

FORMATS = {
    "alpaca": ({"instruction": "Add", "input": "2 + 2", "output": "4"},
               Conversation((U("Add\n\n2 + 2"), A("4")))),
    "alpaca-empty-input": ({"instruction": "Add", "input": "", "output": "4"},
                           Conversation((U("Add"), A("4")))),
    "alpaca-extras": ({"instruction": "Add", "output": "4", "system": "Be terse.", "tags": ["math"],
                       "id": "a1", "category": "arith"},
                      Conversation((U("Add"), A("4")), system="Be terse.", tags=("math", "arith"), id="a1")),
    "alpaca-prompt-only": ({"instruction": "Add"}, Conversation((U("Add"),))),
    "dolly": ({"instruction": "Who?", "context": "Ada wrote it.", "response": "Ada",
               "category": "closed_qa"},
              Conversation((U("Who?\n\nAda wrote it."), A("Ada")), tags=("closed_qa",))),
    "prompt-completion": ({"prompt": "2+2=", "completion": "4"}, Conversation((U("2+2="), A("4")))),
    "prompt-only": ({"prompt": "2+2="}, Conversation((U("2+2="),))),
    "prompt-completion-messages": (
        {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
         "completion": [{"role": "assistant", "content": "R"}]},
        Conversation((U("Q"), A("R")), system="S")),
    "prompt-messages-completion-string": (
        {"prompt": [{"role": "user", "content": "Q"}], "completion": "R"},
        Conversation((U("Q"), A("R")))),
    "messages": ({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
                               {"role": "assistant", "content": "R1"}, {"role": "user", "content": "Q2"},
                               {"role": "assistant", "content": "R2"}], "tags": "chat", "id": 7},
                 Conversation((U("Q1"), A("R1"), U("Q2"), A("R2")), system="S", tags=("chat",), id="7")),
    "messages-prompt-only": ({"messages": [{"role": "user", "content": "Q"}]}, Conversation((U("Q"),))),
    "messages-extra-keys": ({"messages": [{"role": "user", "content": "Q", "name": "x"},
                                          {"role": "assistant", "content": "", "weight": 0}]},
                            Conversation((U("Q"), A("")))),
    "top-level-system": ({"system": "S", "messages": [{"role": "user", "content": "Q"}]},
                         Conversation((U("Q"),), system="S")),
    "sharegpt": ({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                                    {"from": "gpt", "value": "R"}]},
                 Conversation((U("Q"), A("R")), system="S")),
    "sharegpt-user-assistant": ({"conversations": [{"from": "user", "value": "Q"},
                                                   {"from": "assistant", "value": "R"}]},
                                Conversation((U("Q"), A("R")))),
    "seed-task": ({"id": "seed_task_1", "name": "antonym_relation", "instruction": "Relation?",
                   "instances": [{"input": "Night : Day", "output": "Opposites."}, {"input": "x", "output": "y"}],
                   "is_classification": False},
                  Conversation((U("Relation?\n\nNight : Day"), A("Opposites.")), id="antonym_relation")),
    "nulls-are-absent": ({"instruction": "Add", "input": None, "output": "4", "system": None, "tags": None,
                          "id": None, "messages": None},
                         Conversation((U("Add"), A("4")))),
    "empty-system-and-id": ({"instruction": "Add", "output": "4", "system": "", "id": "", "tags": ""},
                            Conversation((U("Add"), A("4")))),
    "content-parts": ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Q"},
                                                                 {"type": "text", "text": " more"}]},
                                    {"role": "assistant", "content": [{"type": "text", "text": "R"}]}]},
                      Conversation((U("Q more"), A("R")))),
    "openai-tool-calls": ({"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "-3 C"},
        {"role": "assistant", "content": "It is -3 C."}], "tools": WEATHER},
        Conversation((U("Weather in Oslo?"), CALL("weather", city="Oslo"), T("-3 C"), A("It is -3 C.")),
                     tools=json.dumps(WEATHER))),
    "sharegpt-tools": ({"conversations": [
        {"from": "human", "value": "Weather in Oslo?"},
        {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Oslo"}}'},
        {"from": "observation", "value": "-3 C"}, {"from": "gpt", "value": "It is -3 C."}],
        "tools": json.dumps(WEATHER)},
        Conversation((U("Weather in Oslo?"), CALL("weather", city="Oslo"), T("-3 C"), A("It is -3 C.")),
                     tools=json.dumps(WEATHER))),
    "kto-undesirable": ({"prompt": "Hi", "completion": "Go away.", "label": False},
                        Conversation((U("Hi"), A("Go away.")), undesirable=True)),
    "kto-desirable": ({"prompt": "Hi", "completion": "Hello!", "label": True}, Conversation((U("Hi"), A("Hello!")))),
    "kto-tag": ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "No."}],
                 "kto_tag": False}, Conversation((U("Hi"), A("No.")), undesirable=True)),
    "empty-media": ({"instruction": "Add", "output": "4", "images": [], "videos": None}, Conversation((U("Add"), A("4")))),
    "text": ({"text": "Once upon a time.", "tags": ["story"], "id": 3, "url": "x"},
             TextRecord("Once upon a time.", tags=("story",), id="3")),
    "text-besides-alpaca": ({"instruction": "Add", "output": "4", "text": "### Instruction: Add ..."},
                            Conversation((U("Add"), A("4")))),
}


@pytest.mark.parametrize("record,expected", FORMATS.values(), ids=FORMATS.keys())
def test_each_format_parses_to_the_exact_conversation(record, expected):
    got = parse_record(record)
    assert type(got) is type(expected) and got == expected
    assert got.to_json() == expected.to_json()


def test_parse_record_passes_a_conversation_through_and_keeps_where_in_meta():
    assert parse_record(HI) is HI
    assert parse_record(GOOD, source="a.jsonl", where="line 3").meta == {"source": "a.jsonl", "where": "line 3"}


# ------------------------------------------------------------------------------ malformed records

MALFORMED = {
    "not-an-object": ([1, 2], "expected an object with the record's fields, got a list"),
    "string": ("hello", "got a string"),
    "unknown-format": ({"foo": 1, "bar": 2}, "no known format: expected one of 'messages', 'conversations', "
                       "'instruction'+'output', 'prompt'+'completion', 'text'; found keys: foo, bar"),
    "output-list": ({"instruction": "a", "output": ["x"]}, "'output' must be a string, got a list"),
    "instruction-number": ({"instruction": 3, "output": "x"}, "'instruction' must be a string, got a number"),
    "input-object": ({"instruction": "a", "input": {}, "output": "x"}, "'input' must be a string, got an object"),
    "system-bool": ({"instruction": "a", "output": "x", "system": True}, "'system' must be a string, got a boolean"),
    "completion-number": ({"prompt": "a", "completion": 3},
                          "'completion' must be a string or a list of messages, got a number"),
    "messages-string": ({"messages": "hi"}, "'messages' must be a list of {role, content} objects, got a string"),
    "messages-empty": ({"messages": []}, "has no user message"),
    "only-system": ({"messages": [{"role": "system", "content": "S"}]}, "has no user message"),
    "message-not-object": ({"messages": ["hi"]}, "message 1 in 'messages' must be an object with 'role' and "
                           "'content', got a string"),
    "message-no-content": ({"messages": [{"role": "user"}]}, "message 1 in 'messages' has no 'content'"),
    "content-null": ({"messages": [{"role": "user", "content": None}]},
                     "message 1 in 'messages': 'content' must be a string, got null"),
    "unknown-role": ({"messages": [{"role": "bot", "content": "x"}]},
                     "message 1 in 'messages' has 'role': 'bot'; expected one of 'system', 'user', 'assistant', "
                     "'tool', 'function'"),
    "role-number": ({"messages": [{"role": 1, "content": "x"}]}, "has 'role': a number"),
    "not-alternating": ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
                        "message 2 in 'messages' is from 'user' but should be from 'assistant' "
                        "(turns alternate user, assistant, starting with user)"),
    "starts-with-assistant": ({"messages": [{"role": "assistant", "content": "a"}]},
                              "message 1 in 'messages' is from 'assistant' but should be from 'user'"),
    "late-system": ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]},
                    "message 2 in 'messages' is a system message; only the first message may be one"),
    "two-systems": ({"system": "S", "messages": [{"role": "system", "content": "T"}, {"role": "user", "content": "a"}]},
                    "has both a 'system' field and a system message"),
    "sharegpt-unknown-from": ({"conversations": [{"from": "bing", "value": "x"}]},
                              "message 1 in 'conversations' has 'from': 'bing'; expected one of"),
    "sharegpt-no-value": ({"conversations": [{"from": "human"}]}, "message 1 in 'conversations' has no 'value'"),
    "completion-from-user": ({"prompt": [{"role": "user", "content": "a"}],
                              "completion": [{"role": "user", "content": "b"}]},
                             "message 1 in 'completion' is from 'user' but should be from 'assistant'"),
    "instances-empty": ({"instruction": "a", "instances": []}, "'instances' is empty"),
    "instances-not-list": ({"instruction": "a", "instances": "x"}, "'instances' must be a list"),
    "instance-no-output": ({"instruction": "a", "instances": [{"input": ""}]}, "'instances' item 1: 'output' is missing"),
    "tags-number": ({"instruction": "a", "output": "b", "tags": 3}, "'tags' must be a list of strings or one string"),
    "tags-item": ({"instruction": "a", "output": "b", "tags": ["x", 1]}, "'tags' must hold strings, but item 2 is a number"),
    "id-list": ({"instruction": "a", "output": "b", "id": [1]}, "'id' must be a string or an integer, got a list"),
    "surrogate": ({"instruction": "a", "output": "\ud800"}, "'output' contains an unpaired surrogate"),
    "content-part-image": ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "x.png"}}]}]},
        "message 1 in 'messages': content part 2 is of type 'image_url'; the lab trains on text only"),
    "content-part-no-text": ({"messages": [{"role": "user", "content": [{"type": "text"}]}]},
                             "content part 1 has type 'text' but no 'text' string"),
    "content-part-string": ({"messages": [{"role": "user", "content": ["hi"]}]},
                            "content part 1 must be an object with a 'type', got a string"),
    "media": ({"messages": [{"role": "user", "content": "<image>What is it?"}, {"role": "assistant", "content": "A cat"}],
               "images": ["cat.png"]}, "has 'images': the lab trains text-only language models"),
    "audio": ({"instruction": "Transcribe", "output": "hi", "audios": ["a.wav"]}, "has 'audios'"),
    "preference": ({"prompt": "2+2?", "chosen": "4", "rejected": "5"},
                   "is a preference record ('chosen' and 'rejected' replies, as DPO uses); SFT learns one reply per "
                   "prompt: to fine-tune on the chosen replies pass --preference chosen"),
    "preference-sharegpt": ({"conversations": [{"from": "human", "value": "2+2?"}],
                             "chosen": {"from": "gpt", "value": "4"}, "rejected": {"from": "gpt", "value": "5"}},
                            "is a preference record"),
    "label-not-bool": ({"prompt": "a", "completion": "b", "label": "bad"},
                       "'label' must be true or false (false marks an undesirable reply), got a string"),
    "text-and-label": ({"text": "Great movie!", "label": 1}, "has 'text' and 'label', like a classification dataset"),
    "text-number": ({"text": 3}, "'text' must be a string, got a number"),
    "function-call-not-json": ({"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "f(1)"}]},
                               "message 2 in 'conversations': a 'function_call' value must be JSON text like"),
    "tool-call-no-name": ({"messages": [{"role": "user", "content": "q"},
                                        {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]},
                          "message 2 in 'messages': tool call 1 must be an object with a 'name' and 'arguments'"),
    "tool-call-bad-arguments": ({"messages": [{"role": "user", "content": "q"},
                                              {"role": "assistant", "tool_calls": [{"name": "f", "arguments": "[1]"}]}]},
                                "tool call 1: 'arguments' must be an object, got a list"),
    "tool-without-call": ({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "42"}]},
                          "message 2 in 'messages' is from 'tool' but should be from 'assistant' (a tool call is "
                          "followed by its 'tool' results, then by the assistant)"),
    "call-not-answered": ({"messages": [{"role": "user", "content": "q"},
                                        {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {}}]},
                                        {"role": "user", "content": "and?"}]},
                          "message 3 in 'messages' is from 'user' but should be from 'tool'"),
    "user-calls-tool": ({"messages": [{"role": "user", "content": "q", "tool_calls": [{"name": "f"}]}]},
                        "message 1 in 'messages' has tool calls, but only assistant messages call tools"),
    "tools-number": ({"instruction": "a", "output": "b", "tools": 3},
                     "'tools' must be a list of tool definitions (objects), got a number"),
    "tools-bad-json": ({"instruction": "a", "output": "b", "tools": "[{"}, "'tools' is text but not valid JSON"),
}


@pytest.mark.parametrize("record,message", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_jsonl_record_names_file_line_and_problem(tmp_path, record, message):
    path = write(tmp_path / "data.jsonl", json.dumps(GOOD) + "\n\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError) as e:
        read_dataset(path)
    assert str(e.value).startswith(f"{path}, line 3: ")
    assert message in str(e.value)
    assert (e.value.source, e.value.where) == (str(path), "line 3")


@pytest.mark.parametrize("record,message", list(MALFORMED.values())[:8])
def test_malformed_json_record_names_record_number(tmp_path, record, message):
    path = write(tmp_path / "data.json", json.dumps([GOOD, GOOD, record]))
    with pytest.raises(DataError, match="record 3: ") as e:
        read_dataset(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_malformed_list_record_has_no_source_but_a_record_number():
    with pytest.raises(DataError) as e:
        read_dataset([GOOD, {"instruction": "a", "output": ["x"]}])
    assert str(e.value) == "record 2: 'output' must be a string, got a list"
    with pytest.raises(DataError, match="expected a file path, a list of records or a datasets.Dataset, got int"):
        read_dataset(3)


# ------------------------------------------------------------------------------ containers and files

def test_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    path = write(tmp_path / "d.jsonl", "\n" + json.dumps(GOOD) + "\r\n  \n" + json.dumps(GOOD))
    got = read_dataset(path)
    assert got == [HI, HI]
    assert [c.meta["where"] for c in got] == ["line 2", "line 4"]


def test_jsonl_bad_json_line(tmp_path):
    path = write(tmp_path / "d.jsonl", json.dumps(GOOD) + "\n{'instruction': 1}\n")
    with pytest.raises(DataError) as e:
        read_dataset(path)
    assert str(e.value) == (f"{path}, line 2: not valid JSON: Expecting property name enclosed in "
                            "double quotes at column 2")


def test_json_list_or_object_with_a_list(tmp_path):
    for key in ("data", "examples", "train"):
        assert read_dataset(write(tmp_path / "d.json", json.dumps({key: [GOOD]}))) == [HI]
    assert read_dataset(write(tmp_path / "d.json", json.dumps([GOOD, GOOD]))) == [HI, HI]


@pytest.mark.parametrize("text,message", [
    ('{"rows": []}', "expected a list of records, or an object with the list under 'data', 'examples' "
                     "or 'train'; found keys: rows"),
    ('"text"', "expected a list of records, got a string"),
    ('[\n{"a": 1},\n', "not valid JSON: Expecting value at line 3 column 1"),
    ("[]", "the dataset is empty (no records)"),
    ("[" * 100_000, "not valid JSON for the lab: nested too deeply"),
])
def test_json_file_problems(tmp_path, text, message):
    path = write(tmp_path / "d.json", text)
    with pytest.raises(DataError) as e:
        read_dataset(path)
    assert str(e.value) == f"{path}: {message}"


def csv_text(header, *rows) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    return buf.getvalue()


def test_csv_alpaca_and_messages_columns(tmp_path):
    msgs = json.dumps([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "R,\n\"x\""}])
    path = write(tmp_path / "d.csv", csv_text(
        ["instruction", "input", "output", "messages", "tags", "id"],
        ["Add", "2 + 2", "4", "", "math", "1"],
        ["", "", "", msgs, '["chat", "x"]', ""],
        ["", "", "", "", "", ""]))  # an all-empty row is skipped like a blank line
    assert read_dataset(path) == [Conversation((U("Add\n\n2 + 2"), A("4")), tags=("math",), id="1"),
                                  Conversation((U("Q"), A('R,\n"x"')), tags=("chat", "x"))]


@pytest.mark.parametrize("header,rows,message", [
    (["instruction", "output"], [["Add", "4"], ["Add", "4", "extra"]], "row 3: has 3 cells but the header has 2"),
    (["question", "answer"], [["Add", "4"]], "row 2: no known format: .* found keys: question, answer"),
    (["instruction", "output", "tags"], [["Add", "4", ""], ["Add", "4", "[1]"]],
     "row 3: 'tags' must hold strings, but item 1 is a number"),
])
def test_csv_problems_name_the_row(tmp_path, header, rows, message):
    path = write(tmp_path / "d.csv", csv_text(header, *rows))
    with pytest.raises(DataError, match=message) as e:
        read_dataset(path)
    assert str(e.value).startswith(f"{path}, row ")


def test_csv_empty_cells_are_empty_text(tmp_path):
    """An empty `output` cell is an empty response (validation warns), not a prompt-only record."""
    path = write(tmp_path / "d.csv", csv_text(["instruction", "output", "system"], ["Add", "", ""]))
    assert read_dataset(path) == [Conversation((U("Add"), A("")))]


def test_csv_bad_json_cell(tmp_path):
    path = write(tmp_path / "d.csv", csv_text(["messages"], ["[{"]))
    with pytest.raises(DataError, match=r"row 2 column 'messages': not valid JSON"):
        read_dataset(path)


def test_file_problems(tmp_path):
    cases = [(tmp_path / "missing.jsonl", "file not found"),
             (write(tmp_path / "d.md", "x"), "unsupported file type '.md'; supported: .jsonl, .json, .csv, "
              ".txt, .parquet, or a folder saved with datasets' save_to_disk"),
             (write(tmp_path / "blank.txt", "\n \n"), "the dataset is empty (no records)"),
             (write(tmp_path / "blank.jsonl", "\n  \n"), "the dataset is empty (no records)"),
             (write(tmp_path / "zero.csv", ""), "the dataset is empty (no records)"),
             (write(tmp_path / "header.csv", "instruction,output\n"), "the dataset is empty (no records)")]
    (tmp_path / "dir.jsonl").mkdir()
    cases.append((tmp_path / "dir.jsonl", "is a folder, but not a dataset saved with datasets' save_to_disk "
                                          "(no dataset_info.json or dataset_dict.json in it)"))
    cases.append((write(tmp_path / "bad.parquet", "not parquet"), "cannot be read as parquet: "))
    for path, message in cases:
        with pytest.raises(DataError) as e:
            read_dataset(path)
        assert str(e.value).startswith(f"{path}: {message}")
        assert "\n" not in str(e.value)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"instruction": "caf\xe9"}\n')
    with pytest.raises(DataError) as e:
        read_dataset(path)
    assert str(e.value) == f"{path}, line 2: not valid UTF-8 text (byte 0xe9); save it as UTF-8"


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("\ufeffinstruction,output\nSay hi,Hi\n".encode())
    assert read_dataset(path) == [HI]


def test_seed_tasks_file_has_175_records(seed_tasks_path):
    convs = read_dataset(seed_tasks_path)
    assert len(convs) == 175 and all(c.is_trainable and c.id for c in convs)
    assert convs[1].id == "antonym_relation"
    assert convs[1].prompt == "What is the relation between the given pairs?\n\nNight : Day :: Right : Left"


def test_hugging_face_dataset_and_dataset_dict():
    datasets = pytest.importorskip("datasets")
    rows = [{"instruction": "Say hi", "input": "", "output": "Hi"},
            {"instruction": "Add", "input": "2 + 2", "output": "4"}]
    want = [HI, Conversation((U("Add\n\n2 + 2"), A("4")))]
    assert read_dataset(datasets.Dataset.from_list(rows)) == want
    assert read_dataset(datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)})) == want
    msgs = datasets.Dataset.from_list([{"messages": [{"role": "user", "content": "Q"},
                                                     {"role": "assistant", "content": "R"}]}])
    assert read_dataset(msgs) == [Conversation((U("Q"), A("R")))]
    with pytest.raises(DataError, match="Hugging Face dataset, record 1: 'output' must be a string"):
        read_dataset(datasets.Dataset.from_list([{"instruction": "a", "output": 3}]))
    with pytest.raises(DataError, match="no 'train' split; it has: test"):
        read_dataset(datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}))


PREFERENCE = {
    "trl-standard": {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    "trl-conversational": {"prompt": [{"role": "user", "content": "2+2?"}],
                           "chosen": [{"role": "assistant", "content": "4"}],
                           "rejected": [{"role": "assistant", "content": "5"}]},
    "trl-implicit-prompt": {"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
                            "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "2+2?"}],
                 "chosen": {"from": "gpt", "value": "4"}, "rejected": {"from": "gpt", "value": "5"}},
}


@pytest.mark.parametrize("record", PREFERENCE.values(), ids=PREFERENCE.keys())
def test_preference_chosen_trains_the_chosen_reply(record):
    assert parse_record(record, preference="chosen") == Conversation((U("2+2?"), A("4")))
    with pytest.raises(DataError, match="is a preference record .* --preference chosen"):
        parse_record(record)


def test_preference_file_and_its_problems(tmp_path):
    path = write(tmp_path / "dpo.jsonl", json.dumps(PREFERENCE["trl-standard"]) + "\n" + json.dumps(GOOD) + "\n")
    assert read_dataset(path, preference="chosen") == [Conversation((U("2+2?"), A("4"))), HI]
    with pytest.raises(DataError) as e:
        read_dataset(path)
    assert str(e.value).startswith(f"{path}, line 1: is a preference record")
    with pytest.raises(DataError, match="'chosen' is plain text and there is no 'prompt'"):
        parse_record({"chosen": "Human: hi Assistant: hello", "rejected": "..."}, preference="chosen")
    with pytest.raises(DataError, match="'rejected' but no 'chosen'"):
        parse_record({"prompt": "q", "rejected": "a"}, preference="chosen")
    with pytest.raises(ValueError, match="preference must be None or one of"):
        parse_record(GOOD, preference="rejected")


def test_txt_file_is_a_text_dataset_one_record_per_paragraph(tmp_path):
    path = write(tmp_path / "book.txt", "\ufeffChapter one.\r\nIt was dark.\r\n\r\n  \nChapter two.\n")
    got = read_dataset(path)
    assert got == [TextRecord("Chapter one.\nIt was dark."), TextRecord("Chapter two.")]
    assert [r.meta["where"] for r in got] == ["line 1", "line 5"]
    assert read_text("One.\n\nTwo.", "txt") == [TextRecord("One."), TextRecord("Two.")]


def test_mixed_text_and_chat_jsonl_round_trips(tmp_path):
    data = [TextRecord("Plain text.", tags=("general",)), HI,
            Conversation((U("Hi"), A("Go away.")), undesirable=True)]
    path = write_jsonl(tmp_path / "mixed.jsonl", data)
    assert path.read_text().splitlines()[0] == '{"text": "Plain text.", "tags": ["general"]}'
    assert '"label": false' in path.read_text().splitlines()[2]
    assert read_dataset(path) == data


def test_csv_label_and_text_columns(tmp_path):
    path = write(tmp_path / "d.csv", csv_text(["prompt", "completion", "label"],
                                              ["Hi", "Go away.", "FALSE"], ["Hi", "Hello!", "true"], ["Hi", "Hey", ""]))
    assert read_dataset(path) == [Conversation((U("Hi"), A("Go away.")), undesirable=True),
                                  Conversation((U("Hi"), A("Hello!"))), Conversation((U("Hi"), A("Hey")))]
    path = write(tmp_path / "t.csv", csv_text(["text", "id"], ["Plain text.", "7"]))
    assert read_dataset(path) == [TextRecord("Plain text.", id="7")]


TOOL_ROWS = [{"messages": [{"role": "user", "content": "Weather in Oslo?"},
                           {"role": "assistant", "content": None, "tool_calls": [
                               {"type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
                           {"role": "tool", "content": "-3 C", "tool_calls": None},
                           {"role": "assistant", "content": "It is -3 C.", "tool_calls": None}]},
             {"messages": [{"role": "user", "content": "Q", "tool_calls": None},
                           {"role": "assistant", "content": "R", "tool_calls": None}], "label": False},
             {"text": "Plain text."}]
TOOL_WANT = [Conversation((U("Weather in Oslo?"), CALL("weather", city="Oslo"), T("-3 C"), A("It is -3 C."))),
             Conversation((U("Q"), A("R")), undesirable=True), TextRecord("Plain text.")]


def columns(rows: list[dict]) -> list[dict]:
    """Rows with every key of any row (null where absent): `from_list` takes the first row's keys."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return [{k: r.get(k) for k in keys} for r in rows]


def test_parquet_file(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "d.parquet"
    datasets.Dataset.from_list(columns(TOOL_ROWS)).to_parquet(str(path))
    assert read_dataset(path) == TOOL_WANT
    bad = tmp_path / "bad.parquet"
    datasets.Dataset.from_list([{"instruction": "a", "output": 3}]).to_parquet(str(bad))
    with pytest.raises(DataError, match=f"{bad}, record 1: 'output' must be a string, got a number"):
        read_dataset(bad)


def test_folder_saved_with_save_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(columns(TOOL_ROWS)).save_to_disk(str(tmp_path / "ds"))
    assert read_dataset(tmp_path / "ds") == TOOL_WANT
    datasets.DatasetDict({"train": datasets.Dataset.from_list([GOOD])}).save_to_disk(str(tmp_path / "dd"))
    got = read_dataset(str(tmp_path / "dd"))
    assert got == [HI] and got[0].meta == {"source": str(tmp_path / "dd"), "where": "record 1"}
    datasets.DatasetDict({"test": datasets.Dataset.from_list([GOOD])}).save_to_disk(str(tmp_path / "dt"))
    with pytest.raises(DataError, match="no 'train' split; it has: test"):
        read_dataset(tmp_path / "dt")


# ------------------------------------------------------------------------------ round trips and writing

text = st.text(max_size=20)
arguments = st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5) | st.booleans(), max_size=3)
tool_call = st.builds(lambda name, args: ToolCall(name, json.dumps(args, ensure_ascii=False)), text, arguments)
# a reply: plain text, or tool calls, their results, then the text
reply = text.map(lambda r: (A(r),)) | st.builds(
    lambda calls, results, r: (Turn("assistant", "", tuple(calls)), *map(T, results), A(r)),
    st.lists(tool_call, min_size=1, max_size=2), st.lists(text, min_size=1, max_size=2), text)
tools = st.none() | st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
    {"name": text})}), min_size=1, max_size=2).map(lambda t: json.dumps(t, ensure_ascii=False))
conversations = st.builds(
    lambda pairs, last, system, tags, id, tools, undesirable: Conversation(
        tuple(t for q, r in pairs for t in (U(q), *r)) + ((U(last),) if last is not None else ()),
        system=system, tags=tuple(tags), id=id, tools=tools, undesirable=undesirable),
    st.lists(st.tuples(text, reply), min_size=1, max_size=3), st.none() | text,
    st.none() | text.filter(bool), st.lists(text, max_size=3), st.none() | text.filter(bool), tools, st.booleans())
texts = st.builds(lambda t, tags, id: TextRecord(t, tags=tuple(tags), id=id),
                  st.text(min_size=1, max_size=30), st.lists(text, max_size=2), st.none() | text.filter(bool))
records_out = st.lists(conversations | texts, min_size=1, max_size=5)


@ROUND_TRIP
@given(convs=records_out)
def test_jsonl_round_trip(tmp_path, convs):
    path = write_jsonl(tmp_path / "out.jsonl", convs)
    assert read_dataset(path) == convs


@ROUND_TRIP
@given(convs=records_out)
def test_json_and_csv_round_trip(tmp_path, convs):
    as_json = write(tmp_path / "out.json", json.dumps({"data": [c.to_json() for c in convs]}))
    assert read_dataset(as_json) == convs
    rows = [[json.dumps(c.messages()), json.dumps(list(c.tags)), c.id or "", c.tools or "",
             "false" if c.undesirable else "", ""] if isinstance(c, Conversation) else
            ["", json.dumps(list(c.tags)), c.id or "", "", "", c.text] for c in convs]
    as_csv = write(tmp_path / "out.csv", csv_text(["messages", "tags", "id", "tools", "label", "text"], *rows))
    assert read_dataset(as_csv) == convs


@ROUND_TRIP
@given(convs=records_out)
def test_parquet_round_trip(tmp_path, convs):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    # arguments as JSON text, as parquet datasets keep them (a struct column would merge their keys)
    rows = [{**c.to_json(), "messages": [{**m, "tool_calls": [{"function": {**call["function"], "arguments": json.dumps(
        call["function"]["arguments"])}} for call in m["tool_calls"]]} if "tool_calls" in m else m
        for m in c.to_json()["messages"]]} if isinstance(c, Conversation) else c.to_json() for c in convs]
    rows = [{**r, "tools": json.dumps(r["tools"])} if "tools" in r else r for r in rows]
    pq.write_table(pa.Table.from_pylist(columns(rows)), tmp_path / "out.parquet")
    assert read_dataset(tmp_path / "out.parquet") == convs


line = st.text(min_size=1, max_size=10).filter(lambda l: l.strip() and "\n" not in l and "\r" not in l)


@FUZZ
@given(paragraphs=st.lists(st.lists(line, min_size=1, max_size=3), min_size=1, max_size=4))
def test_txt_round_trip(paragraphs):
    text = "\n\n".join("\n".join(p) for p in paragraphs)
    assert read_text(text, "txt") == [TextRecord("\n".join(p)) for p in paragraphs]


def test_write_jsonl_lines_are_to_json(tmp_path):
    convs = [Conversation((U("Q"), A("R\u2028é")), system="S", tags=("t",), id="x")]  # U+2028: not a line break
    path = write_jsonl(tmp_path / "sub" / "out.jsonl", convs)
    assert path.read_text(encoding="utf-8") == ('{"messages": [{"role": "system", "content": "S"}, '
                                                '{"role": "user", "content": "Q"}, {"role": "assistant", '
                                                '"content": "R\u2028é"}], "tags": ["t"], "id": "x"}\n')
    assert read_dataset(path) == convs


class Boom(Conversation):
    def to_json(self):
        raise RuntimeError("cannot serialise")


def test_write_is_atomic_on_failure_and_leaves_no_temp_files(tmp_path):
    path = write_jsonl(tmp_path / "out.jsonl", [HI])
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        write_jsonl(path, [HI, HI, Boom((U("Q"),))])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    with pytest.raises(RuntimeError):
        write_jsonl(tmp_path / "new.jsonl", [HI, Boom((U("Q"),))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


# ------------------------------------------------------------------------------ fuzzing: DataError or nothing

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                           max_leaves=10)
KEYS = ["messages", "conversations", "instruction", "input", "output", "prompt", "completion", "instances",
        "system", "tags", "id", "name", "category", "context", "response", "text", "chosen", "rejected",
        "label", "kto_tag", "tools", "images", "audios"]
ROLES = st.sampled_from(["user", "assistant", "system", "human", "gpt", "tool", "function_call", "observation",
                         "function"])
part = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "input_audio"])},
                             optional={"text": st.text(max_size=5) | json_values})
call = st.fixed_dictionaries({}, optional={"name": st.text(max_size=3) | json_values,
                                           "arguments": st.sampled_from(["{}", '{"a": 1}', "[", ""]) | json_values})
calls = st.lists(call | st.fixed_dictionaries({"function": call}), max_size=2)
message = (st.fixed_dictionaries({"role": ROLES, "content": st.text(max_size=5) | st.lists(part, max_size=2) | st.none()},
                                 optional={"tool_calls": calls | json_values})
           | st.fixed_dictionaries({"from": ROLES, "value": st.text(max_size=5)
                                    | st.sampled_from(['{"name": "f", "arguments": {}}', '[{"name": "f"}]', "{"])})
           | st.dictionaries(st.sampled_from(["role", "content", "from", "value", "tool_calls"]), json_values, max_size=2))
field_value = (st.text(max_size=5) | st.lists(message, max_size=4) | json_values
               | st.lists(st.dictionaries(st.sampled_from(["input", "output"]), st.text(max_size=3) | json_values)))
records = (st.dictionaries(st.sampled_from(KEYS), field_value, min_size=1, max_size=6)
           | st.sampled_from([["messages"], ["conversations"], ["instruction", "output"], ["prompt", "completion"],
                              ["instruction", "instances"], ["instruction", "context", "response"]])
             .flatmap(lambda keys: st.fixed_dictionaries({k: field_value for k in keys},
                                                         optional={k: field_value for k in KEYS if k not in keys}))
           | json_values)


def only_data_errors(path: Path):
    for preference in (None, "chosen"):
        try:
            read_dataset(path, preference=preference)
        except DataError:
            pass


@FUZZ
@given(rows=st.lists(records, min_size=1, max_size=4))
def test_fuzz_jsonl_and_json_values(tmp_path, rows):
    only_data_errors(write(tmp_path / "f.jsonl", "\n".join(json.dumps(r) for r in rows)))
    only_data_errors(write(tmp_path / "f.json", json.dumps(rows)))
    only_data_errors(write(tmp_path / "g.json", json.dumps(rows[0])))


@FUZZ
@given(rows=st.lists(st.lists(st.text(max_size=6) | records.map(json.dumps), min_size=1, max_size=4), max_size=4),
       header=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4))
def test_fuzz_csv_cells(tmp_path, header, rows):
    only_data_errors(write(tmp_path / "f.csv", csv_text(header, *rows)))


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(tmp_path, data):
    for suffix in (".jsonl", ".json", ".csv", ".txt", ".parquet"):
        path = tmp_path / f"f{suffix}"
        path.write_bytes(data)
        only_data_errors(path)
