"""DatasetBuilder state tests without a kernel: set traits the way the browser does (edited
`rows`, button click counters, an upload) and check the Python side: autosave file, examples,
warnings, mask preview, summary, histogram."""
import copy
import json

import pytest

from lab.data import starters
from lab.data.dataio import read_dataset
from lab.records import Conversation
from widgets import DatasetBuilder


@pytest.fixture()
def builder(tok, tmp_path):
    return DatasetBuilder(tokenizer=tok, path=tmp_path / "ds.jsonl", max_length=128)


def saved(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def edit(b, change):
    """What the front end does: copy `rows`, change the copy, set it back."""
    rows = copy.deepcopy(b.rows)
    change(rows)
    b.rows = rows


def test_starts_empty_with_its_traits(builder, tmp_path):
    assert builder.rows == [] and builder.examples == [] and builder.selected == -1
    assert builder.starters == starters.names() and builder.starter_choice == starters.names()[0]
    assert builder.has_tokenizer and builder.path == str(tmp_path / "ds.jsonl") and builder.error == ""
    assert not (tmp_path / "ds.jsonl").exists()  # nothing to save yet
    assert builder.get_state()["histogram"].startswith("anywidget:")  # the figure travels as a widget ref


def test_load_starter_from_the_dropdown_and_autosave(builder, tmp_path):
    builder.starter_choice = "persona"
    builder.load_clicks += 1
    want = starters.load("persona")
    assert builder.error == "" and builder.examples == want and builder.starter == "persona"
    assert builder.probes == starters.probes("persona") and "pirate" in builder.starter_notes
    assert "Loaded starter 'persona'" in builder.message
    assert saved(tmp_path / "ds.jsonl") == [c.to_json() for c in want]
    assert read_dataset(tmp_path / "ds.probes.jsonl") == builder.probes
    assert builder.summary["count"] == len(want) and builder.summary["warnings"] == 0
    assert len(builder.reviews) == len(want) and all(r["tokens"] > 20 for r in builder.reviews)
    assert list(builder.histogram.data[0].x) == [r["tokens"] for r in builder.reviews]
    assert builder.selected == 0 and builder.preview


def test_edits_from_the_browser_are_autosaved_and_restored(builder, tok, tmp_path):
    builder.load_starter("persona")
    edit(builder, lambda rows: rows[0]["messages"][1].update(content="Arr! Boil it, matey. Yo-ho!"))
    assert builder.examples[0].response == "Arr! Boil it, matey. Yo-ho!"
    assert saved(tmp_path / "ds.jsonl")[0]["messages"][1]["content"] == "Arr! Boil it, matey. Yo-ho!"
    edit(builder, lambda rows: rows.append({"messages": [{"role": "user", "content": ""},
                                                         {"role": "assistant", "content": ""}]}))  # Add example
    edit(builder, lambda rows: rows[-1]["messages"].insert(0, {"role": "system", "content": "Be a pirate."}))
    assert builder.examples[-1].system == "Be a pirate."
    # a new builder on the same file (a kernel restart) gets everything back, probes too
    again = DatasetBuilder(tokenizer=tok, path=tmp_path / "ds.jsonl")
    assert again.examples == builder.examples and again.probes == builder.probes
    assert "Restored 45 examples and 12 probes" in again.message
    # ... and the starter it came from, with its notes, not the first name in the dropdown
    assert again.starter == again.starter_choice == "persona" and again.starter_notes == builder.starter_notes
    assert "from starter 'persona'" in again.message


def test_summary_counts_what_training_can_use_at_max_length(builder):
    builder.load_starter("persona")
    assert builder.summary["trained_within"] == builder.summary["trainable"] == 44
    builder.max_length = 5  # shorter than any prompt: training would find nothing
    assert builder.summary["trainable"] == 44 and builder.summary["trained_within"] == 0


def test_a_failed_import_clears_the_last_success_message(builder, tmp_path):
    builder.load_starter("persona")
    assert builder.message.startswith("Loaded starter")
    builder.import_path = str(tmp_path / "missing.jsonl")
    builder.import_clicks += 1
    assert "file not found" in builder.error and builder.message == ""


def test_duplicate_delete_and_warnings_per_example(builder):
    builder.set_examples([Conversation.single("What is 2+2?", "4"), Conversation.single("Capital of France?", "Paris")])
    assert [r["warnings"] for r in builder.reviews] == [[], []]
    edit(builder, lambda rows: rows.insert(1, copy.deepcopy(rows[0])))  # Duplicate
    assert builder.reviews[1]["warnings"] == ["example 2 duplicates example 1 (same prompt and response)"]
    assert builder.summary["flagged"] == 1
    edit(builder, lambda rows: rows[1]["messages"][1].update(content="5"))
    assert "same prompt as example 1 but a different response" in builder.reviews[1]["warnings"][0]
    edit(builder, lambda rows: rows[1]["messages"][0].update(content="  "))
    assert builder.reviews[1]["warnings"] == ["example 2 has an empty prompt"]
    edit(builder, lambda rows: rows.pop(1))  # Delete
    assert len(builder.examples) == 2 and builder.summary["warnings"] == 0


def test_mask_preview_and_end_of_turn_warning(builder):
    builder.set_examples([Conversation.single("Say hi", "Hi there, friend!", system="Be brief.")])
    builder.selected = 0
    tokens = builder.preview
    trained = [text for text, is_trained, cut in tokens if is_trained]
    assert tokens[0] == ["<|im_start|>", False, False]
    assert "".join(trained) == "Hi there, friend!<|im_end|>\n"
    assert builder.reviews[0]["tokens"] == len(tokens) and builder.reviews[0]["trained"] == len(trained)
    builder.max_length = len(tokens) - 3  # cuts the end-of-turn token off
    assert [cut for _, _, cut in builder.preview][-3:] == [True] * 3
    warnings = builder.reviews[0]["warnings"]
    assert any("truncated" in w for w in warnings)
    assert any("cuts off the end-of-turn token" in w for w in warnings)
    assert builder.summary["over_max_length"] == 1
    builder.completion_only = False  # loss on every token: the preview says so
    assert all(is_trained for _, is_trained, _ in builder.preview)


def test_multi_turn_records_show_every_turn(builder):
    builder.set_examples([{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                                        {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}]}])
    assert [m["content"] for m in builder.rows[0]["messages"]] == ["Hi", "Hello", "Bye", "Bye!"]
    assert builder.summary["multi_turn"] == 1
    edit(builder, lambda rows: rows[0]["messages"][1].update(content="Hello!"))
    assert builder.examples[0].turns[1].content == "Hello!"


def test_upload_import_and_export(builder, tmp_path):
    builder.upload = {"name": "mine.csv", "text": "instruction,output\nName a colour,Blue\nName a fruit,Apple\n"}
    assert builder.upload == {} and builder.error == ""
    assert [c.response for c in builder.examples] == ["Blue", "Apple"] and "Imported 2 examples" in builder.message
    builder.upload = {"name": "bad.jsonl", "text": '{"prompt": "a", "completion": "b"}\n{"prompt": 3}\n'}
    assert builder.error.startswith("bad.jsonl, line 2:") and len(builder.examples) == 2
    (tmp_path / "more.jsonl").write_text('{"prompt": "Q", "completion": "A"}\n')
    builder.import_path = str(tmp_path / "more.jsonl")
    builder.import_clicks += 1
    assert builder.error == "" and builder.examples[-1].prompt == "Q" and len(builder.examples) == 3
    (tmp_path / "odd.jsonl").write_text('{"prompt": "Q", "completion": "A"}\n{"prompt": "Z"}\n')
    builder.import_path = str(tmp_path / "odd.jsonl")
    builder.import_clicks += 1  # what validate would say comes with the import message
    assert builder.message == (f"Imported 2 examples from {tmp_path / 'odd.jsonl'}; 5 in all. 1 warning "
                               "(1 no-response): example 2 (line 2) has no response (it ends on a user turn), so "
                               "it has nothing to train on")
    builder.import_path = str(tmp_path / "missing.jsonl")
    builder.import_clicks += 1
    assert "missing.jsonl: file not found" in builder.error
    builder.export_path = str(tmp_path / "out.jsonl")
    builder.export_clicks += 1
    assert builder.error == "" and read_dataset(tmp_path / "out.jsonl") == builder.examples
    builder.export_path = str(tmp_path / "out.csv")
    builder.export_clicks += 1
    assert "ending in .jsonl" in builder.error


def test_replacing_keeps_every_previous_list_and_bad_names_say_what_exists(builder, tmp_path):
    builder.set_examples([Conversation.single("Mine", "My own example")])
    builder.load_starter("support")
    assert "previous 1 examples are in" in builder.message
    builder.load_starter("persona")  # a second replacement keeps the first backup too
    first, second = builder.backups()
    assert read_dataset(first)[0].prompt == "Mine" and len(read_dataset(second)) == 45
    assert str(second) in builder.message
    builder.starter_choice = "nope"
    builder.load_clicks += 1
    assert "no starter dataset named 'nope'" in builder.error and "persona" in builder.error
    assert builder.starter == "persona"  # nothing changed


def test_unreadable_autosave_is_kept_aside(tok, tmp_path):
    (tmp_path / "ds.jsonl").write_text("{not json\n")
    b = DatasetBuilder(tokenizer=tok, path=tmp_path / "ds.jsonl", starter="persona")
    assert "could not reload the autosave file" in b.error and "line 1" in b.error
    assert (tmp_path / "ds.jsonl.unreadable").read_text() == "{not json\n"
    assert b.starter == "persona" and len(b.examples) == 44


def test_without_tokenizer_or_autosave(tmp_path):
    b = DatasetBuilder([{"prompt": "a", "completion": "b"}] * 2, tokenizer=None, path=None)
    assert not b.has_tokenizer and b.path == "" and b.preview == []
    assert b.reviews[0]["tokens"] is None and b.summary["flagged"] == 1  # the duplicate
    assert not list(tmp_path.iterdir())


def test_plain_text_records_are_a_text_dataset(builder, tmp_path):
    """Text (pre-training data) in the builder: one box per record, every token trained, kept
    through the autosave, and trainable from the Train tab."""
    from lab.records import TextRecord
    from lab.config import TrainConfig
    from lab.session import Session

    (tmp_path / "notes.txt").write_text("The water cycle moves water around.\n\nBread rises because of yeast.\n")
    builder.set_examples([])
    builder.import_file(tmp_path / "notes.txt")
    assert builder.rows == [{"text": "The water cycle moves water around."},
                            {"text": "Bread rises because of yeast."}]
    assert all(isinstance(c, TextRecord) for c in builder.examples) and builder.summary["trainable"] == 2
    builder.selected = 1
    assert builder.preview and all(trained for _, trained, _ in builder.preview[1:])  # every token but the first
    edit(builder, lambda rows: rows[0].update(text="The water cycle moves water between sea and sky."))
    assert builder.examples[0].text.endswith("sea and sky.")
    assert saved(tmp_path / "ds.jsonl")[0] == {"text": "The water cycle moves water between sea and sky."}
    s = Session("tiny-random", runs_dir=tmp_path / "runs")
    run = s.train(builder.examples, TrainConfig(max_steps=2, eval_split=0), save=False)
    assert run.result.steps == 2 and run.result.trained_tokens > 0
