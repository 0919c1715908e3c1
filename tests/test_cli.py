"""The sft-lab command end to end on tiny-random, and its errors for people."""
import json
import subprocess
import sys

import pytest

from lab.cli import main
from lab.dataio import write_jsonl
from lab.records import Conversation

DATA = [Conversation.single(f"Say {w}", f"{w}!") for w in ("yes", "no", "maybe", "hello")]


def run(*args):
    """The CLI in a child process, as a person runs it."""
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                               **{k: v for k, v in __import__("os").environ.items()
                                  if k in ("HOME", "SFT_LAB_CACHE")}})


@pytest.fixture()
def data(tmp_path):
    return write_jsonl(tmp_path / "d.jsonl", DATA)


def test_train_then_compare_and_score(tmp_path, data, capsys):
    out = tmp_path / "run"
    assert main(["train", str(data), "--model", "tiny-random", "--out", str(out), "--max-steps", "2",
                 "--batch-size", "2", "--eval", str(data)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("out", "train_tokens", "seconds", "tokens_per_second", "final_loss", "eval_loss"):
        assert key in summary
    assert summary["out"] == str(out) and summary["steps"] == 2
    assert (out / "model" / "model.safetensors").is_file()

    assert main(["compare", "--base", "tiny-random", "--tuned", str(out / "model"), "--prompts", str(data),
                 "--max-new-tokens", "4"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == [c.prompt for c in DATA]
    assert all(set(r) == {"prompt", "base", "tuned"} for r in rows)

    assert main(["score", "--model", str(out / "model"), "--data", str(data)]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(scored["examples"]) == 4 and scored["mean_nll"] > 0


def test_generate_prints_only_the_reply():
    done = run("generate", "--model", "tiny-random", "--prompt", "Hi", "--max-new-tokens", "5")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) <= 1  # the reply, nothing else


@pytest.mark.parametrize("content,fragment", [
    ('{"instruction": 5, "output": "x"}\n', "line 1: 'instruction' must be a string"),
    ('{"prompt": "a", "completion": "b"}\n{"oops\n', "line 2"),
])
def test_bad_data_exits_2_with_one_line(tmp_path, content, fragment):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    for args in (["train", str(bad), "--out", str(tmp_path / "o"), "--model", "no-such-model"],
                 ["validate", str(bad)], ["score", "--data", str(bad), "--model", "no-such-model"]):
        done = run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "bad.jsonl" in done.stderr and fragment in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()


def test_missing_file(tmp_path):
    done = run("validate", str(tmp_path / "nope.jsonl"))
    assert done.returncode == 2 and "nope.jsonl" in done.stderr and "not found" in done.stderr


def test_validate_reports(tmp_path, capsys):
    path = write_jsonl(tmp_path / "v.jsonl", DATA + [DATA[0], Conversation.single("q", " ")])
    assert main(["validate", str(path), "--model", "tiny-random"]) == 0
    out = capsys.readouterr().out
    assert "duplicate" in out and "empty" in out


def test_unknown_model_is_one_line(tmp_path, data):
    done = run("generate", "--model", str(tmp_path / "nothing-here"), "--prompt", "Hi")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "nothing-here" in done.stderr
