"""Starter data: probe labels that hold, learner notes without answer keys, flaws at a rate."""
from __future__ import annotations

import json
import re

import pytest

from lab.data import starters
from lab.masks import render
from lab.data.starters import flaws

ALL = starters.names()
WITH_PROBES = [n for n in ALL if starters.probes(n)]


# ---------------------------------------------------------------------------- probe labels

@pytest.mark.parametrize("name", WITH_PROBES)
def test_every_probe_is_labelled_and_every_paraphrase_points_at_a_training_example(name):
    labels = starters.probe_labels(name)
    train = {c.id: c for c in starters.load(name)}
    for probe in starters.probes(name):
        label = labels[probe.id]
        assert label.kind in ("paraphrase", "new"), probe.id
        if label.kind == "paraphrase":
            assert label.paraphrase_of in train, f"{probe.id} paraphrases a missing id"
            assert train[label.paraphrase_of].tags[0] == probe.tags[0], probe.id  # same topic
        else:
            assert label.paraphrase_of is None, probe.id


@pytest.mark.parametrize("name", WITH_PROBES)
def test_a_probe_that_reuses_a_training_question_or_answer_is_a_paraphrase_of_it(name):
    """Word-for-word reuse of a training answer (or question) must not pass as a new probe."""
    labels = starters.probe_labels(name)
    for probe in starters.probes(name):
        same = [c.id for c in starters.load(name)
                if c.response == probe.response or c.prompt == probe.prompt]
        if same:
            assert labels[probe.id] == starters.ProbeLabel("paraphrase", same[0]), probe.id


def test_probe_labels_say_what_the_teacher_notes_say():
    """The counts quoted in TEACHER.md match the data."""
    for name, paraphrases in {"support": 7, "factual_qa": 3, "persona": 4, "contracts": 0}.items():
        kinds = [label.kind for label in starters.probe_labels(name).values()]
        assert kinds.count("paraphrase") == paraphrases, name


def test_a_probe_without_a_kind_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    (folder / "probes.jsonl").write_text(json.dumps({"id": "p1", "prompt": "a", "completion": "b"}) + "\n")
    monkeypatch.setattr(starters, "HERE", tmp_path)
    with pytest.raises(ValueError, match=r"probes.jsonl, line 1: 'kind' must be one of paraphrase, new"):
        starters.probe_labels("mine")


# ---------------------------------------------------------------------------- notes

@pytest.mark.parametrize("name", ALL)
def test_every_starter_has_learner_notes_with_a_data_statement_and_teacher_notes(name):
    notes = starters.describe(name)
    assert notes.startswith(f"# {name}") and "## Data statement" in notes
    assert "Apache License 2.0" in notes and "2026" in notes
    assert (starters.HERE / name / "TEACHER.md").is_file()


def test_the_flawed_set_learner_notes_hold_no_answer_key():
    notes = starters.describe("flawed_support")
    key = (starters.HERE / "flawed_support" / "TEACHER.md").read_text()
    row_ids = re.findall(r"\b0\d\d\b", key.split("## Flaws at a chosen rate")[0])
    assert len(set(row_ids)) >= 20                       # the key lists the bad rows by number ...
    assert not re.search(r"\b0\d\d\b", notes)            # ... and the learner notes name none
    for giveaway in ("Rude", "Contradict", "duplicates", "$99", "$150", "72 h", "flaw-"):
        assert giveaway not in notes


def test_retention_and_general_sets_have_data_statements():
    assert "## Data statement" in (starters.HERE / "retention" / "README.md").read_text()
    assert "## general_text.jsonl" in (starters.HERE / "DATA.md").read_text()


# ---------------------------------------------------------------------------- flaws at a rate

def test_the_pool_rows_replace_distinct_support_rows_and_keep_what_they_contradict():
    support = {c.id: c for c in starters.load("support")}
    pool = flaws.pool()
    replaced = [f.replaces for f in pool]
    kept = {f.conflicts_with for f in pool if f.conflicts_with}
    assert len(set(replaced)) == len(replaced) and not kept & set(replaced)
    assert set(replaced) | kept <= set(support)
    for f in pool:
        asked = f.conflicts_with or f.replaces
        assert f.example.prompt == support[asked].prompt         # the same question ...
        assert f.example.response != support[asked].response     # ... another answer
        assert f.example.tags[0] == support[f.replaces].tags[0]  # topic counts unchanged
        assert (f.kind == "conflicting-answer") == (f.conflicts_with is not None)
    assert {f.kind for f in pool} == set(flaws.KINDS)


@pytest.mark.parametrize("rate, n", [(0, 0), (0.02, 1), (0.1, 5), (0.33, 15), (30 / 45, 30)])
def test_flawed_honours_the_rate_and_keeps_size_and_topics(rate, n):
    mix = starters.flawed(rate)
    support = starters.load("support")
    assert len(mix) == len(support)
    assert sum(starters.flaw_counts(mix).values()) == n
    assert [c.tags[0] for c in mix] == [c.tags[0] for c in support]
    assert all(starters.flaw_of(c) is None for c in mix if c.id.startswith("support-"))


def test_flawed_is_seeded_nested_and_spreads_the_kinds():
    assert starters.flawed(0.1, seed=3) == starters.flawed(0.1, seed=3)
    assert starters.flawed(0.33, seed=0) != starters.flawed(0.33, seed=1)
    for seed in (0, 1, 2):
        low, mid, high = ({c.id for c in starters.flawed(r, seed) if starters.flaw_of(c)}
                          for r in (0.02, 0.1, 0.33))
        assert low <= mid <= high
    assert starters.flaw_counts(starters.flawed(0.1)) == {k: 1 for k in flaws.KINDS}
    assert starters.flaw_counts(starters.flawed(0.33)) == {k: 3 for k in flaws.KINDS}


def test_flaw_tags_never_reach_the_model_and_an_unmarked_mix_has_none(tok):
    mix = starters.flawed(0.33)
    assert not any("flaw" in render(tok, c.messages()) for c in mix)
    plain = starters.flawed(0.33, marked=False)
    assert [c.messages() for c in plain] == [c.messages() for c in mix]
    assert not any("flaw" in " ".join(c.tags) + (c.id or "") for c in plain)


def test_leaked_addresses_are_fake():
    addresses = re.findall(r"[\w.]+@\w+(?:\.\w+)+", " ".join(f.example.response for f in flaws.pool()))
    assert len(addresses) == 6 and all(a.endswith("@example.com") for a in addresses)


@pytest.mark.parametrize("rate", [-0.1, 0.7, 2])
def test_a_rate_out_of_range_is_refused_with_the_limit(rate):
    with pytest.raises(ValueError, match="rate"):
        starters.flawed(rate)


def test_the_fixed_flawed_set_still_loads_as_before():
    rows = starters.load("flawed_support")
    assert len(rows) == 40 and not any(starters.flaw_of(c) for c in rows)
