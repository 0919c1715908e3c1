"""The pure functions behind the widgets, on literal data: word diff, figures, the cost
estimate, the per-example review, the comparison table and reading uploaded text."""
import json
from types import SimpleNamespace as NS

import plotly.graph_objects as go
import pytest

from lab.present import plots
from lab.present.comparison import flatten, make_row, write_table
from lab.data.dataio import read_text
from lab.config import steps_for
from lab.analysis.estimate import describe, duration, estimate, matmul_gflops, memory_gb, seconds_for
from lab.masks import token_preview
from lab.records import Conversation, DataError
from lab.data.review import end_of_turn_problem, review
from lab.present.textdiff import similarity, word_diff
from lab.train import TrainConfig


# -- textdiff ---------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, want", [
    ("the cat sat", "the dog sat", [("equal", "the "), ("delete", "cat"), ("insert", "dog"), ("equal", " sat")]),
    ("Hello.", "Arr! Hello. Yo-ho!", [("insert", "Arr! "), ("equal", "Hello."), ("insert", " Yo-ho!")]),
    ("same words", "same words", [("equal", "same words")]),
    ("", "", []),
    ("gone", "", [("delete", "gone")]),
])
def test_word_diff_literal(a, b, want):
    assert word_diff(a, b) == want


def test_word_diff_gives_back_both_texts():
    a, b = "One line.\nTwo  spaces here, ok", "One line!\nTwo spaces here, ok and more"
    ops = word_diff(a, b)
    assert "".join(t for op, t in ops if op != "insert") == a
    assert "".join(t for op, t in ops if op != "delete") == b
    assert all(ops[i][0] != ops[i + 1][0] for i in range(len(ops) - 1))  # merged runs


def test_similarity():
    assert similarity("a b c d", "a b c d") == 1.0
    assert similarity("a b c d", "a b x y") == 0.5
    assert similarity("", "") == 1.0


# -- plots ------------------------------------------------------------------------------------
def test_length_histogram_marks_max_length():
    fig = plots.length_histogram([10, 20, 300], max_length=256)
    assert isinstance(fig, go.Figure) and list(fig.data[0].x) == [10, 20, 300]
    assert "3 examples (1 over max_length)" in fig.layout.title.text
    assert [s.x0 for s in fig.layout.shapes] == [256]
    assert not plots.length_histogram([]).layout.shapes


def test_loss_series_and_figure():
    history = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 2, "eval_loss": 2.5},
               {"step": 3, "loss": 1.5}]
    assert plots.loss_series(history) == {"train_x": [1, 2, 3], "train_y": [3.0, 2.0, 1.5],
                                          "eval_x": [2], "eval_y": [2.5]}
    fig = plots.loss_figure(history)
    assert [t.name for t in fig.data] == ["train loss", "eval loss"]
    assert list(fig.data[0].y) == [3.0, 2.0, 1.5] and list(fig.data[1].x) == [2]
    assert len(plots.loss_figure().data[0].x or ()) == 0
    assert plots.loss_figure([], total_steps=10).layout.xaxis.range == (0.5, 10.5)  # the whole run


def test_a_chart_sends_its_figure_and_refers_to_the_one_plotly_library():
    from widgets.chart import Chart, PlotlyLibrary

    chart = Chart(plots.length_histogram([1, 2], 8))
    chart.show(plots.length_histogram([5, 6, 7, float("nan")], 4))
    assert list(chart.data[0].x)[:3] == [5, 6, 7] and [s.x0 for s in chart.layout.shapes] == [4]
    assert chart.figure["data"][0]["x"] == [5, 6, 7, None]  # JSON the browser takes: NaN as null
    assert "over max_length" in chart.figure["layout"]["title"]["text"]
    other = Chart()
    assert isinstance(chart._plotly, PlotlyLibrary) and other._plotly is chart._plotly
    assert len(chart._esm) < 10_000 < 1_000_000 < len(chart._plotly._esm)  # plotly.js: once per kernel


# -- estimate ---------------------------------------------------------------------------------
def test_cost_formulas_on_literal_numbers():
    assert seconds_for(tokens=1000, params=1_000_000, gflops=100.0, efficiency=0.5) == pytest.approx(0.12)
    shape = NS(config=NS(num_hidden_layers=2, hidden_size=64, vocab_size=1000))
    # fp32: 20 bytes/param + activations of one 256-token micro-batch (2 rows of 128) at 48 bytes
    # + the logits' gradient (2 rows x 64 trained, 4 bytes) and a slice of fp32 logits + 0.3 GB
    want = (20e6 + 2 * 2 * 128 * 64 * 48 + 2 * 64 * 1000 * (4 + 4)) / 1e9 + 0.3
    assert memory_gb(1_000_000, shape, batch_size=8, seq_len=128, trained_per_row=64) == pytest.approx(want)
    # bf16: 18 bytes/param, 512-token micro-batches (4 rows) at 24 bytes, the logits' gradient
    # of 4 x 64 rows in bf16, an fp32 slice capped at 128 rows
    want = (18e6 + 2 * 4 * 128 * 64 * 24 + 4 * 64 * 1000 * 2 + 128 * 1000 * 4) / 1e9 + 0.3
    assert memory_gb(1_000_000, shape, 8, 128, 64, bf16=True) == pytest.approx(want)
    assert steps_for(45, TrainConfig(epochs=2, batch_size=8)) == (6, 12)
    assert steps_for(45, TrainConfig(epochs=2, batch_size=8, max_steps=3)) == (6, 3)
    assert steps_for(10, TrainConfig(epochs=0.5, batch_size=4, grad_accum=2)) == (2, 1)
    assert (duration(59.4), duration(60), duration(3600)) == ("59 s", "1 min 00 s", "1 h 00 min")
    assert describe({"examples": 0}) == "no trainable examples"


def test_estimate_counts_like_the_trainer(tiny):
    model, tok = tiny
    data = [Conversation.single(f"Question {i}?", f"Answer number {i}.") for i in range(10)]
    data.append(Conversation.single("A prompt with no reply"))  # not trainable: not counted
    cfg = TrainConfig(epochs=2, batch_size=4, max_length=64, eval_split=0.0)
    est = estimate(data, tok, cfg, model, gflops=100.0, efficiency=0.5)
    per_epoch = sum(len(token_preview(c, tok, 64)) for c in data[:10])
    params = sum(p.numel() for p in model.parameters())
    assert (est["examples"], est["held_out"], est["steps"], est["tokens"]) == (10, 0, 6, 2 * per_epoch)
    assert est["seconds"] == pytest.approx(6 * params * 2 * per_epoch / 50e9)
    assert 0.3 < est["memory_gb"] < 2
    held = estimate(data, tok, TrainConfig(epochs=1, batch_size=4, eval_split=0.2), model, gflops=100.0)
    assert (held["examples"], held["held_out"], held["steps"]) == (8, 2, 2)
    assert "8 trained on, 2 held out" in describe(held)
    assert estimate([], tok, cfg, model)["steps"] == 0
    measured = estimate(data, tok, cfg, model, tokens_per_second=100.0)  # a run's own speed wins
    assert measured["seconds"] == pytest.approx(est["tokens"] / 100.0)


def test_matmul_rate_is_measured_once():
    rate = matmul_gflops()
    assert rate > 0.1 and matmul_gflops() == rate


# -- review -----------------------------------------------------------------------------------
def test_end_of_turn_problem_literal():
    p = [("<|im_start|>", False), ("A", True), ("<|im_end|>", True), ("\n", True)]
    assert end_of_turn_problem(p, {"<|im_end|>"}, None) is None
    assert end_of_turn_problem(p, {"<|im_end|>"}, 3) is None
    assert "cuts off" in end_of_turn_problem(p, {"<|im_end|>"}, 2)
    assert "not trained" in end_of_turn_problem([("A", True), ("<|im_end|>", False)], {"<|im_end|>"}, None)


def test_review_attaches_warnings_to_examples(tok):
    long = "word " * 80
    data = [Conversation.single("Hi", "Hello!"), Conversation.single("Hi", "Hello!"),
            Conversation.single("Tell me a story", long), Conversation.single("Only a prompt")]
    reviews, report = review(data, tok, max_length=48)
    assert reviews[0].warnings == []
    assert reviews[0].tokens == len(token_preview(data[0], tok)) and reviews[0].trained > 0
    assert reviews[1].warnings == ["example 2 duplicates example 1 (same prompt and response)"]
    assert any("truncated" in w for w in reviews[2].warnings)
    assert any("cuts off the end-of-turn token" in w for w in reviews[2].warnings)
    assert any("no response" in w for w in reviews[3].warnings)
    assert report.stats["count"] == 4
    plain, _ = review(data, None)
    assert plain[0].tokens is None and plain[1].warnings  # duplicates need no tokenizer


# -- comparison table -----------------------------------------------------------------------
def test_rows_flatten_and_export(tmp_path):
    row = make_row("Hi?", {"base": "Hello.", "tuned": "Arr! Hello.", "run-1": "Hi."}, reference="Arr! Hi.",
                   nll={"base": 2.5, "tuned": 1.25})
    assert [c["name"] for c in row["columns"]] == ["base", "tuned", "run-1"]
    assert row["columns"][0]["diff"] is None and row["columns"][1]["nll"] == 1.25
    assert row["columns"][2]["diff"] == [("delete", "Hello."), ("insert", "Hi.")]
    assert flatten([row]) == [{"prompt": "Hi?", "reference": "Arr! Hi.", "base": "Hello.", "base nll": 2.5,
                               "tuned": "Arr! Hello.", "tuned nll": 1.25, "run-1": "Hi."}]
    csv_text = write_table(tmp_path / "t.csv", [row, make_row("x, y", {"base": "a\nb", "tuned": "c"})]).read_text()
    assert csv_text.splitlines()[0] == "prompt,reference,base,base nll,tuned,tuned nll,run-1"
    assert '"x, y",,"a\nb",,c,,' in csv_text
    jsonl = (write_table(tmp_path / "t.jsonl", [row])).read_text().splitlines()
    assert json.loads(jsonl[0])["tuned"] == "Arr! Hello."
    gaps = make_row("Q", {"base": "Hello.", "tuned": "", "run-1": None})["columns"]
    assert [(c["reply"], c["diff"], c["similarity"]) for c in gaps[1:]] == [
        ("", [("delete", "Hello.")], 0.0), (None, None, None)]
    with pytest.raises(ValueError, match="ending in .csv or .jsonl"):
        write_table(tmp_path / "t.txt", [row])


# -- reading uploaded text ----------------------------------------------------------------
def test_read_text_formats_and_errors():
    jsonl = '{"instruction": "Add", "input": "2+2", "output": "4"}\n\n{"prompt": "Hi", "completion": "Hey"}\n'
    assert [c.response for c in read_text(jsonl, "jsonl")] == ["4", "Hey"]
    assert read_text('\ufeff[{"prompt": "a", "completion": "b"}]', ".json")[0].prompt == "a"
    assert read_text("prompt,completion\nQ,A\n", "CSV")[0].response == "A"
    with pytest.raises(DataError, match=r"my\.jsonl, line 2: not valid JSON"):
        read_text('{"prompt": "a"}\n{oops', "jsonl", source="my.jsonl")
    assert read_text("Plain text.", "txt")[0].text == "Plain text."
    with pytest.raises(DataError, match="unsupported file type 'md'"):
        read_text("x", "md")
    with pytest.raises(DataError, match="unsupported file type 'parquet' for text"):
        read_text("x", "parquet")
