"""The sft-lab command end to end on tiny-random, its errors for people (exit 2, one line, before a
model loads), and its help (every flag with its default)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from lab.cli import main
from lab.data.dataio import write_jsonl
from lab.records import Conversation
from lab.runs import read_jsonl

DATA = [Conversation.single(f"Say {w}", f"{w}!") for w in ("yes", "no", "maybe", "hello")]


ENV = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
       **{k: v for k, v in os.environ.items() if k in ("HOME", "SFT_LAB_CACHE")}}


def run(*args):
    """The CLI in a child process, as a person runs it."""
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, env=ENV)


def cli(capsys, *args):
    """The CLI's main() in this process (its exit code and stderr, like `run`, 2 s faster: no
    torch import), for errors one child process per kind already shows end to end."""
    capsys.readouterr()
    code = main(list(args))
    return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)


@pytest.fixture()
def data(tmp_path):
    return write_jsonl(tmp_path / "d.jsonl", DATA)


@pytest.fixture(scope="module")
def unloadable(tmp_path_factory):
    """A model folder whose tokenizer loads and whose weights do not (cut short)."""
    from lab.models import ModelError, load_model
    from lab.runs import save_model

    folder = tmp_path_factory.mktemp("unloadable") / "model"
    save_model(*load_model("tiny-random"), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError):
        load_model(str(folder))
    return str(folder)


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


def test_generate_prints_only_the_reply(taught):
    """`taught` (conftest.py) answers "Say yes." with "Yes, of course." (tiny-random's reply is
    empty, and an empty stdout would pass any check on its lines)."""
    prompt, reply = taught.pairs[4]
    done = run("generate", "--model", str(taught.path), "--prompt", prompt, "--max-new-tokens", "20")
    assert done.returncode == 0, done.stderr
    assert done.stdout == reply + "\n"  # the reply, nothing else


@pytest.mark.parametrize("content,fragment,child", [
    ('{"instruction": 5, "output": "x"}\n', "line 1: 'instruction' must be a string", True),
    ('{"prompt": "a", "completion": "b"}\n{"oops\n', "line 2", False),
])
def test_bad_data_exits_2_with_one_line(tmp_path, content, fragment, child, capsys):
    """Once in a child process for train (what a person sees), else in this one (the same
    main(), 2 s faster)."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    train_args = ("train", str(bad), "--out", str(tmp_path / "o"), "--model", "no-such-model")
    done = run(*train_args) if child else cli(capsys, *train_args)
    outcomes = [(done.returncode, done.stderr)]
    for args in (["validate", str(bad)], ["score", "--data", str(bad), "--model", "no-such-model"]):
        outcomes.append((main(args), capsys.readouterr().err))
    for code, err in outcomes:
        assert code == 2, err
        assert "bad.jsonl" in err and fragment in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_missing_file(tmp_path, capsys):
    done = cli(capsys, "validate", str(tmp_path / "nope.jsonl"))
    assert done.returncode == 2 and "nope.jsonl" in done.stderr and "not found" in done.stderr


def test_validate_reports(tmp_path, capsys):
    path = write_jsonl(tmp_path / "v.jsonl", DATA + [DATA[0], Conversation.single("q", " ")])
    assert main(["validate", str(path), "--model", "tiny-random"]) == 0
    out = capsys.readouterr().out
    assert "duplicate" in out and "empty" in out


def test_unknown_model_is_one_line(tmp_path, data, capsys):
    done = cli(capsys, "generate", "--model", str(tmp_path / "nothing-here"), "--prompt", "Hi")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "nothing-here" in done.stderr


# ------------------------------------------------------------------------------ nothing dropped silently

def one_line_exit_2(done, *fragments):
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, (fragment, done.stderr)


def test_incomplete_records_stop_train_unless_skipped(tmp_path, capsys):
    path = tmp_path / "alpaca.jsonl"
    path.write_text(json.dumps({"instruction": "Say yes", "output": "yes!"}) + "\n"
                    + json.dumps({"instruction": "Say no"}) + "\n")
    done = cli(capsys, "train", str(path), "--model", "no-such-model", "--out", str(tmp_path / "o"))
    one_line_exit_2(done, f"{path}, line 2: has no response to train on", "1 of 2 records",
                    "--skip-incomplete")
    assert not (tmp_path / "o").exists()
    assert main(["train", str(path), "--model", "tiny-random", "--out", str(tmp_path / "o"), "--max-steps", "1",
                 "--skip-incomplete", "--eval-split", "0"]) == 0
    captured = capsys.readouterr()
    assert "1 warning (1 no-response): example 2 (line 2) has no response" in captured.err
    assert "left out of training: 1 with no response" in captured.err
    assert json.loads(captured.out.splitlines()[-1])["left_out"] == {"incomplete": 1}


def test_train_summarises_validate_warnings_on_stderr(tmp_path, capsys):
    path = write_jsonl(tmp_path / "d.jsonl", DATA + [DATA[0], Conversation.single("q", " ")])
    assert main(["train", str(path), "--model", "tiny-random", "--out", str(tmp_path / "o"),
                 "--max-steps", "1"]) == 0
    err = capsys.readouterr().err
    assert (f"sft-lab: {path}: 2 warnings (1 duplicate, 1 empty-response): example 5 (line 5) duplicates "
            "example 1 (line 1)") in err


def test_undesirable_replies_are_left_out_and_counted(tmp_path, capsys):
    path = tmp_path / "kto.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Say {w}", "completion": f"{w}!", "label": w != "no"}) + "\n"
                            for w in ("yes", "no", "maybe")))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 examples (3 trainable, 0 multi-turn, 1 marked undesirable)" in out
    assert 'example 2 (line 2) is marked undesirable ("label": false)' in out
    args = ["train", str(path), "--model", "tiny-random", "--max-steps", "1", "--eval-split", "0"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert "left out of training: 1 marked undesirable (--include-undesirable trains them)" in captured.err
    assert json.loads(captured.out.splitlines()[-1])["left_out"] == {"undesirable": 1}
    assert len((tmp_path / "a" / "dataset.jsonl").read_text().splitlines()) == 2
    assert main(args + ["--out", str(tmp_path / "b"), "--include-undesirable"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.splitlines()[-1])["left_out"] == {} and "left out" not in captured.err
    assert len((tmp_path / "b" / "dataset.jsonl").read_text().splitlines()) == 3
    assert json.loads((tmp_path / "b" / "config.json").read_text())["include_undesirable"] is True


def test_preference_pairs_are_named_and_chosen_on_request(tmp_path, capsys):
    path = tmp_path / "dpo.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Say {w}", "chosen": f"{w}!", "rejected": "no"}) + "\n"
                            for w in ("yes", "maybe")))
    done = cli(capsys, "validate", str(path))
    one_line_exit_2(done, f"{path}, line 1: is a preference record ('chosen' and 'rejected' replies, as DPO uses)",
                    "--preference chosen")
    assert main(["train", str(path), "--model", "tiny-random", "--out", str(tmp_path / "o"), "--max-steps", "1",
                 "--preference", "chosen"]) == 0
    capsys.readouterr()
    assert [json.loads(line)["messages"][-1]["content"] for line in
            (tmp_path / "o" / "dataset.jsonl").read_text().splitlines()] in (["yes!"], ["maybe!"])


@pytest.mark.parametrize("record,fragment", [
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]}]},
     "line 1: message 1 in 'messages': content part 1 is of type 'image_url'"),
    ({"instruction": "Describe", "output": "A cat", "images": ["cat.png"]}, "line 1: has 'images'"),
    ({"conversations": [{"from": "human", "value": "Oslo?"},
                        {"from": "function_call", "value": '{"name": "weather", "arguments": {}}'},
                        {"from": "observation", "value": "-3 C"}, {"from": "gpt", "value": "Cold."}]},
     ": example 1 (line 1): turn 2 calls the tool 'weather'"),
])
def test_records_the_lab_cannot_train_stop_before_the_model_loads(tmp_path, record, fragment, unloadable, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(record) + "\n")
    # whether tool turns can be rendered depends on the chat template: the tokenizer loads, the
    # model cannot, so the data's error can only come first
    done = cli(capsys, "train", str(path), "--model", unloadable, "--out", str(tmp_path / "o"))
    one_line_exit_2(done, str(path), fragment)
    assert not (tmp_path / "o").exists()


def test_a_text_file_trains_with_the_full_loss(tmp_path, capsys):
    path = tmp_path / "book.txt"
    path.write_text("Once upon a time there was a lab.\n\nIt trained small models.\n\nThe end.\n")
    assert main(["validate", str(path)]) == 0
    assert "3 examples (3 trainable, 0 multi-turn, 3 plain texts)" in capsys.readouterr().out
    assert main(["train", str(path), "--model", "tiny-random", "--out", str(tmp_path / "o"), "--max-steps", "1",
                 "--eval-split", "0", "--batch-size", "3"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["trained_tokens"] == summary["train_tokens"] - 3  # every token but each text's first
    assert (tmp_path / "o" / "dataset.jsonl").read_text().splitlines()[0].startswith('{"text": ')


def test_bad_settings_exit_2_before_the_model_loads(tmp_path, data, capsys):
    done = cli(capsys, "train", str(data), "--model", "no-such-model", "--out", str(tmp_path / "o"), "--lr", "0")
    one_line_exit_2(done, "lr must be above 0")


# ------------------------------------------------------------------------------ a killed run, a finished run

def test_a_killed_run_is_listed_interrupted_and_its_folder_reused(tmp_path, data, capsys):
    """A real `sft-lab train` killed mid-run (SIGKILL: no handler runs) leaves a folder that
    `sft-lab runs` lists as interrupted, and a new run may start there; while it still runs,
    and once a run there has finished, a new run is refused (exit 2, one line, before any model
    loads: the model named cannot load), unless --overwrite replaces the finished one."""
    out = tmp_path / "runs" / "r"
    script = Path(sys.executable).with_name("sft-lab")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "lab"]
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([*command, "train", str(data), "--model", "tiny-random", "--out", str(out),
                                 "--max-steps", "100000", "--batch-size", "1", "--eval-split", "0"],
                                stdout=subprocess.DEVNULL, stderr=err, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").is_file() or not (out / "metrics.jsonl").read_text().count("\n"):
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "no step in 120 s"
            time.sleep(0.2)

        def cards():
            assert main(["runs", "--dir", str(tmp_path / "runs"), "--json"]) == 0
            return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

        assert [c["status"] for c in cards()] == ["running"]
        for extra in ([], ["--overwrite"]):  # still going: refused, whatever the flags
            assert main(["train", str(data), "--model", "no-such-model", "--out", str(out), *extra]) == 2
            said = capsys.readouterr().err
            assert said == f"sft-lab: {out} is in use by a run that is still going (process {proc.pid})\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    [card] = cards()
    assert card["status"] == "interrupted" and card["steps"] >= 1 and card["total_steps"] == 100000
    assert not (out / "run.json").exists() and (out / ".running").exists()  # the dead process's mark
    assert main(["runs", "--dir", str(tmp_path / "runs")]) == 0
    assert " interrupted " in capsys.readouterr().out

    # a new run in the killed run's folder: allowed, the old run's leftovers cleared
    args = ["train", str(data), "--out", str(out), "--eval-split", "0"]
    assert main([*args, "--model", "tiny-random", "--max-steps", "2"]) == 0
    capsys.readouterr()
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r] == [1, 2]
    assert not (out / ".running").exists() and cards()[0]["status"] == "done"

    # a finished run: refused before the model loads, untouched; --overwrite replaces it
    card = (out / "run.json").read_bytes()
    assert main([*args, "--model", "no-such-model"]) == 2
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and f"{out} holds a finished run (run.json)" in said and "--overwrite" in said
    assert (out / "run.json").read_bytes() == card
    assert main([*args, "--model", "tiny-random", "--max-steps", "3", "--overwrite"]) == 0
    capsys.readouterr()
    assert [c["steps"] for c in cards()] == [3]


# ------------------------------------------------------------------------------ help

def test_every_flag_has_help_with_its_default():
    import argparse

    from lab.cli import build_parser
    from lab.config import TrainConfig

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) >= {"train", "validate", "export-gguf", "export-trl", "generate", "compare", "score",
                             "runs", "fetch-model"}
    for name, sub in commands.items():
        assert sub.formatter_class is argparse.ArgumentDefaultsHelpFormatter
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            shows_default = action.required or not action.option_strings and action.nargs is None
            assert shows_default or action.default is not argparse.SUPPRESS, (name, action.dest)
    text = commands["train"].format_help()
    text = text[text.index("options:"):]
    d = TrainConfig()
    for flag, default in (("--lr", d.lr), ("--epochs", d.epochs), ("--batch-size", d.batch_size),
                          ("--max-length", d.max_length), ("--schedule", d.schedule)):
        option = text[text.index(f"  {flag} "):]
        assert f"(default: {default})" in " ".join(option[:option.index("\n  --", 5)].split()), flag
