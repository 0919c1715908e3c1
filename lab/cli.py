"""The `sft-lab` command (also `python -m lab`): the same functions the widgets drive.

Results go to stdout (plain text or one JSON object per line); progress and messages go to
stderr. Bad data exits with status 2 and one line naming the file and the problem, before any
model is loaded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .records import Conversation, DataError


def _err(msg: str, code: int = 2) -> int:
    print(f"sft-lab: {msg}", file=sys.stderr)
    return code


def _quiet_transformers() -> None:
    """Only errors from transformers, if it gets imported at all (the lab's own model and
    tokenizer classes do without it, and importing it costs most of a second)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def _read(path: str, args, *, trainable: bool = False):
    """The records of a data file (with `--preference` where the command has it)."""
    from .data.dataio import read_dataset

    records = read_dataset(path, preference=getattr(args, "preference", None))
    if trainable and not any(c.is_trainable for c in records):
        raise DataError("no example has an assistant reply to train on", source=path)
    return records


def _complete(records, path: str) -> None:
    """Refuse records with no reply to train on, naming the first (`--skip-incomplete` skips
    them instead): a file that is missing its responses should not train as if it had them."""
    incomplete = [r for r in records if not r.is_trainable]
    if incomplete:
        first = incomplete[0]
        raise DataError(f"has no response to train on (no 'output', 'completion' or assistant reply); "
                        f"{len(incomplete)} of {len(records)} records are like this: add their responses, "
                        "or pass --skip-incomplete to train without them",
                        source=path, where=first.meta.get("where"))


def _prompts(path: str, args) -> list:
    """Each record of a data file as a prompt (the conversation before its last reply)."""
    from .records import TextRecord

    records = _read(path, args)
    for r in records:
        if isinstance(r, TextRecord):
            raise DataError("is plain text, not a conversation: prompts need a user turn",
                            source=path, where=r.meta.get("where"))
    return [c.prompt_only() for c in records]


def _points(value: str) -> int | str:
    """--timeline's value: 'auto' or a whole number >= 0."""
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number of points: give a whole number "
                                         "(0 = off) or 'auto'")
    return n


def cmd_fetch_model(args) -> int:
    from tqdm import tqdm

    from .models import DEFAULT, TINY, load_model, prepare_default

    _quiet_transformers()
    if args.name in (DEFAULT, TINY):
        with tqdm(total=100, desc="default model", file=sys.stderr,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}") as bar:
            def progress(stage: str, frac: float) -> None:
                bar.set_postfix_str(stage)
                bar.update(round(frac * 100) - bar.n)
            path = prepare_default(progress)
        print(path)
    else:
        model, _ = load_model(args.name)
        print(model.config.name_or_path)
    if args.timeline:
        _prepare_timeline(args.name)
    return 0


def _prepare_timeline(name: str) -> None:
    """Step 0 of every starter's probes and the meter's base answers, kept on disk
    (`lab.analysis.timeline.prepare`), so even a first run's timeline starts with them."""
    import time

    from .data import starters
    from .analysis.timeline import prepare

    sets = [p for p in (starters.probes(s) for s in starters.names()) if p]
    t = time.perf_counter()
    made = prepare(name, sets, on_progress=lambda n, total: print(
        f"sft-lab: timeline step 0, probe set {n}/{total}", file=sys.stderr, flush=True))
    print(f"sft-lab: timeline step 0 of {len(sets)} starters' probes ready "
          f"({made} computed in {time.perf_counter() - t:.0f} s, the rest already there)", file=sys.stderr)


def cmd_generate(args) -> int:
    from .generate import GenConfig, generate
    from .models import load_model

    _quiet_transformers()
    model, tok = load_model(args.model)
    cfg = GenConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    print(generate(model, tok, [args.prompt], cfg)[0])
    return 0


class _Bar:
    """A tqdm progress bar on stderr fed by the trainer's callbacks."""

    def __init__(self):
        from tqdm import tqdm
        self._tqdm, self.bar = tqdm, None

    def on_start(self, total_steps, n_examples):
        self.bar = self._tqdm(total=total_steps, desc="train", unit="step", file=sys.stderr)

    def on_step(self, info):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{info.loss:.3f}", tok_s=f"{info.tokens_per_second:.0f}")

    def on_eval(self, step, eval_loss):
        self.bar.write(f"step {step}: eval loss {eval_loss:.4f}", file=sys.stderr)

    def on_end(self, result):
        self.bar.close()


def cmd_train(args) -> int:
    from dataclasses import fields

    from .config import TrainConfig
    from .models import load_tokenizer
    from .runs import check_free
    from .data.validate import check_dataset

    data = _read(args.data, args, trainable=True)
    eval_data = _read(args.eval, args, trainable=True) if args.eval else None
    probes = _read(args.probes, args) if args.probes else []
    if args.timeline and not probes and not args.retention:
        raise DataError("--timeline needs --probes FILE (prompts, with reference answers to score) "
                        "or --retention (the forgetting meter)")
    if not args.skip_incomplete:
        _complete(data, args.data)
        if eval_data:
            _complete(eval_data, args.eval)
    try:
        cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    except ValueError as err:
        return _err(str(err))
    check_free(args.out, overwrite=args.overwrite)
    _quiet_transformers()
    report = check_dataset(data, load_tokenizer(args.model), cfg.max_length)  # before the model loads
    if not report.ok:
        raise DataError(report.errors[0].message, source=args.data)
    if cfg.include_undesirable:  # asked for: no longer a warning that they will be left out
        report.warnings = [w for w in report.warnings if w.kind != "undesirable"]
    if report.warnings:
        print(f"sft-lab: {args.data}: {report.brief()}", file=sys.stderr)
    from .models import load_model
    from .runner import Start, make_run
    from .analysis.timeline import TimelineConfig

    model, tok = load_model(args.model)
    timeline = (TimelineConfig(points=args.timeline, retention=args.retention, max_probes=len(probes))
                if args.timeline else None)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation and drops: in the brief above and in left_out
        made = make_run(model, tok, data, cfg, out_dir=args.out, overwrite=args.overwrite,
                        eval_data=eval_data, probes=probes, timeline=timeline, callbacks=[_Bar()],
                        start=Start(name=args.model))
    result = made.result
    if result.left_out:
        said = {"undesirable": "marked undesirable (--include-undesirable trains them)",
                "incomplete": "with no response", "no_trained_token": "with nothing to train within max_length"}
        parts = [f"{n} {said.get(k, k)}" for k, n in result.left_out.items()]
        print(f"sft-lab: left out of training: {', '.join(parts)}", file=sys.stderr)
    summary = result.summary()
    if made.forgetting:
        summary["forgetting"] = made.forgetting
    print(json.dumps(summary))
    return 0


def cmd_report(args) -> int:
    from .present.report import report

    try:
        out = report(args.path, args.out)
    except FileNotFoundError as err:
        return _err(str(err))
    print(out)
    return 0


def cmd_learned(args) -> int:
    from .analysis.learned import learned
    from .models import load_model

    data = _read(args.data, args)
    _quiet_transformers()
    base, tok = load_model(args.base)
    tuned, _ = load_model(args.tuned)
    print(json.dumps(learned(base, tuned, tok, data, top=args.top, max_length=args.max_length),
                     ensure_ascii=False))
    return 0


def cmd_explain(args) -> int:
    from tqdm import tqdm

    from .analysis.influence import explain

    _quiet_transformers()
    bar = None

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal bar
        if stage != "gradients":
            print(f"sft-lab: {stage}", file=sys.stderr)
            return
        if bar is None:
            bar = tqdm(total=total, desc="training examples", unit="example", file=sys.stderr)
        bar.update(done - bar.n)

    prompt = Conversation.single(args.prompt, system=args.system)
    try:  # the run's files are checked before the model loads: a missing one exits with 2
        result = explain(args.run, prompt, args.reply, args.top, blocks=args.blocks,
                         max_new_tokens=args.max_new_tokens, on_progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(json.dumps(result, ensure_ascii=False))
    return 0


def cmd_compare(args) -> int:
    from .generate import GenConfig, generate
    from .models import load_model

    prompts = _prompts(args.prompts, args)
    _quiet_transformers()
    cfg = GenConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed)
    replies = {}
    for role, name in (("base", args.base), ("tuned", args.tuned)):
        model, tok = load_model(name)
        replies[role] = generate(model, tok, prompts, cfg)
        del model
    for i, p in enumerate(prompts):
        print(json.dumps({"prompt": p.prompt, "base": replies["base"][i], "tuned": replies["tuned"][i]},
                         ensure_ascii=False))
    return 0


def cmd_score(args) -> int:
    from .models import load_model
    from .score import score

    data = _read(args.data, args, trainable=True)
    _quiet_transformers()
    model, tok = load_model(args.model)
    print(json.dumps(score(model, tok, [c for c in data if c.is_trainable], args.max_length).to_json()))
    return 0


def cmd_validate(args) -> int:
    from .data.validate import check_dataset

    data = _read(args.data, args)
    tok = None
    if args.model:
        _quiet_transformers()
        from .models import load_tokenizer
        tok = load_tokenizer(args.model)
    report = check_dataset(data, tok, args.max_length if tok else None)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_runs(args) -> int:
    from .runs import list_runs

    cards = list_runs(args.dir)
    if args.json:
        for c in cards:
            print(json.dumps({k: v for k, v in c.items() if k != "traceback"}))
        return 0
    if not cards:
        print(f"no runs under {args.dir}", file=sys.stderr)
        return 0
    print(f"{'run':40} {'status':11} {'examples':>8} {'steps':>5} {'loss':>7} {'eval_nll':>8}  finished")
    for c in cards:
        def num(key):
            v = c.get(key)
            return f"{v:.4f}" if isinstance(v, (int, float)) else "-"
        print(f"{c['path']:40} {c.get('status', 'done'):11} {c.get('n_examples', '-')!s:>8} "
              f"{c.get('steps', '-')!s:>5} {num('final_loss'):>7} {num('eval_nll'):>8}  {c.get('finished_at', '')}")
    return 0


def cmd_export_trl(args) -> int:
    from .export.trl import export_trl

    try:
        path = export_trl(args.run, args.out, model=args.model)
    except FileNotFoundError as err:
        return _err(str(err))
    print(path)
    print(f"run it with: cd {path.parent} && trl sft --config {path.name} (see README.md there)", file=sys.stderr)
    return 0


def cmd_export_gguf(args) -> int:
    from .export.gguf import export_gguf

    try:
        gguf, modelfile = export_gguf(args.run, args.out, dtype=args.dtype)
    except (FileNotFoundError, ValueError) as err:  # no model there; one GGUF export does not cover
        return _err(str(err))
    print(gguf)
    print(f"run it with: ollama create NAME -f {modelfile} && ollama run NAME", file=sys.stderr)
    return 0


_FORMATTER = argparse.ArgumentDefaultsHelpFormatter  # every flag's help line ends with its default
_REQUIRED = {"required": True, "default": argparse.SUPPRESS}  # a required flag has no default to show


def _command(sub, name: str, help: str, func):
    s = sub.add_parser(name, help=help, description=help, formatter_class=_FORMATTER)
    s.set_defaults(func=func)
    return s


def _preference_flag(s) -> None:
    from .data.formats import PREFERENCES

    s.add_argument("--preference", choices=PREFERENCES, default=None,
                   help="read preference pairs ('chosen'/'rejected', as DPO uses) as their chosen replies "
                        "(without it such files are refused)")


def _generation_flags(s) -> None:
    from .generate import GenConfig

    d = GenConfig()
    s.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="upper bound on reply length")
    s.add_argument("--temperature", type=float, default=d.temperature, help="0 = greedy (deterministic); > 0 samples")
    s.add_argument("--seed", type=int, default=d.seed, help="seed of the sampling")


def _train_flags(s, config=None) -> None:
    """One flag per setting of `config` (default `TrainConfig`), its help and default from the
    setting's declaration (`lab.config.setting`)."""
    from .config import SCHEDULES, TrainConfig, settings

    types = {"float": float, "int": int, "int | None": int, "float | None": float, "str": str}
    for f in settings(config or TrainConfig):
        text = f["help"].replace("%", "%%")
        if f["name"] == "completion_only":  # on by default: the flag turns it off
            s.add_argument("--full-loss", dest=f["name"], action="store_false",
                           help="train on every token, not only responses (completion_only=%(default)s "
                                "without it)")
        elif isinstance(f["default"], bool):
            s.add_argument(f"--{f['name'].replace('_', '-')}", action="store_true", help=text)
        else:
            s.add_argument(f"--{f['name'].replace('_', '-')}", type=types[f["type"]], default=f["default"],
                           help=text, choices=SCHEDULES if f["name"] == "schedule" else None)


def cmd_workshop(args) -> int:
    from .workshop.editions import write_learner_edition

    try:
        written = write_learner_edition(args.out, args.source)
    except (FileNotFoundError, FileExistsError) as err:
        return _err(str(err))
    notebooks = [p for p in written if p.suffix == ".ipynb"]
    print(f"{args.out}: {len(notebooks)} learner notebooks (no solutions, no answer keys, no outputs) "
          "and a README for learners", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .config import TrainConfig
    from .analysis.influence import BLOCKS
    from .models import DEFAULT

    p = argparse.ArgumentParser(prog="sft-lab", description=__doc__.splitlines()[0], formatter_class=_FORMATTER)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = "model: 'default', 'tiny-random', a model folder or a hub id"

    s = _command(sub, "fetch-model", "prepare a model for offline use", cmd_fetch_model)
    s.add_argument("name", nargs="?", default=DEFAULT, help=model_help)
    s.add_argument("--timeline", action=argparse.BooleanOptionalAction, default=True,
                   help="also compute the timeline's step 0 for every starter's probes and the "
                        "forgetting meter's base answers, so a first run finds them")

    s = _command(sub, "generate", "print the model's reply to one user message", cmd_generate)
    s.add_argument("--model", default=DEFAULT, help=model_help)
    s.add_argument("--prompt", **_REQUIRED, help="the user message")
    _generation_flags(s)

    s = _command(sub, "train", "fine-tune a model on a dataset; writes a run folder", cmd_train)
    s.add_argument("data", help="training data: .jsonl, .json, .csv, .parquet, .txt or a saved datasets folder")
    s.add_argument("--model", default=DEFAULT, help=model_help)
    s.add_argument("--out", **_REQUIRED, help="run folder (config, metrics, dataset, model/)")
    s.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    s.add_argument("--eval", default=None, help="held-out data for eval loss (else --eval-split of the data)")
    s.add_argument("--skip-incomplete", action="store_true",
                   help="train without the records that have no response (else they stop the run)")
    _preference_flag(s)
    _train_flags(s)
    s.add_argument("--timeline", type=_points, default=0, metavar="K|auto",
                   help="record a timeline into timeline.jsonl: probe replies and NLLs at K points "
                        "(step 0, evenly spaced, the last), or 'auto': step 0, the last and as many "
                        "between as fit a quarter of the training time (0 = off)")
    s.add_argument("--probes", default=None, metavar="FILE",
                   help="prompts for the timeline (any data format; reference answers are scored)")
    s.add_argument("--retention", action=argparse.BooleanOptionalAction, default=False,
                   help="with --timeline: the forgetting meter (retention set NLL at each point, "
                        "answers checked before and after)")

    s = _command(sub, "learned", "tokens and phrases the tuning promoted and suppressed (JSON, last line)",
                 cmd_learned)
    s.add_argument("--base", **_REQUIRED, help="the model before tuning (" + model_help + ")")
    s.add_argument("--tuned", **_REQUIRED, help="the tuned model, e.g. a run's model/ folder")
    s.add_argument("--data", **_REQUIRED, help="prompts with reference answers (without them, the "
                                               "tuned model's own replies are scored)")
    s.add_argument("--top", type=int, default=10, help="items per list")
    s.add_argument("--max-length", type=int, default=512, help="tokens per example; longer ones are cut")
    _preference_flag(s)

    s = _command(sub, "explain", "which training examples of a run pushed a reply up or down (JSON, last "
                 "line): TracIn-style gradient similarity at the run's final weights, an estimate that "
                 "ranks examples, not what training without one would change", cmd_explain)
    s.add_argument("run", help="a run folder (with dataset.jsonl and model/)")
    s.add_argument("--prompt", **_REQUIRED, help="the user message")
    s.add_argument("--system", default=None, help="a system prompt before it (without it, the chat template's default)")
    s.add_argument("--reply", default=None, help="the reply to explain (without it, the run's model's own greedy reply)")
    s.add_argument("--top", type=int, default=5, help="examples per list (supporting, opposing)")
    s.add_argument("--blocks", type=int, default=BLOCKS,
                   help="compare gradients over the last N transformer blocks and the final norm")
    s.add_argument("--max-new-tokens", type=int, default=128, help="upper bound on the reply's length (without --reply)")

    s = _command(sub, "compare", "base and tuned replies to each prompt, one JSON line each", cmd_compare)
    s.add_argument("--base", **_REQUIRED, help="the model before tuning (" + model_help + ")")
    s.add_argument("--tuned", **_REQUIRED, help="the tuned model, e.g. a run's model/ folder")
    s.add_argument("--prompts", **_REQUIRED, help="a data file; each record's user turn is a prompt")
    _preference_flag(s)
    _generation_flags(s)

    s = _command(sub, "score", "mean NLL per response token of reference answers", cmd_score)
    s.add_argument("--model", default=DEFAULT, help=model_help)
    s.add_argument("--data", **_REQUIRED, help="reference answers (any data file the lab reads)")
    s.add_argument("--max-length", type=int, default=512, help="tokens per example; longer ones are cut")
    _preference_flag(s)

    s = _command(sub, "validate", "problems, warnings and stats of a dataset", cmd_validate)
    s.add_argument("data", help="a data file (any format the lab reads)")
    s.add_argument("--model", default=None, help="count tokens with this model's tokenizer")
    s.add_argument("--max-length", type=int, default=TrainConfig().max_length,
                   help="flag examples longer than this many tokens (with --model)")
    _preference_flag(s)

    s = _command(sub, "runs", "list stored runs (run cards under a folder)", cmd_runs)
    s.add_argument("--dir", default="runs", help="folder to look for run folders in (any depth)")
    s.add_argument("--json", action="store_true", help="one JSON card per line")

    s = _command(sub, "export-trl", "write a run's dataset, a TRL SFTConfig YAML, an accelerate config "
                 "and a README into a folder to copy to a bigger machine", cmd_export_trl)
    s.add_argument("run", help="a run folder (with config.json and dataset.jsonl)")
    s.add_argument("out", help="folder to write")
    s.add_argument("--model", default=None, help="model for TRL (default: the run's, as a hub id)")

    s = _command(sub, "export-gguf", "write a run's model as GGUF (llama.cpp, Ollama) with an Ollama "
                 "Modelfile", cmd_export_gguf)
    s.add_argument("run", help="a run folder (with model/) or a model folder")
    s.add_argument("out", help="folder to write model.gguf and Modelfile into")
    s.add_argument("--dtype", choices=("f16", "f32"), default="f16", help="weights' number format")

    s = _command(sub, "report", "one self-contained HTML file about a run or an experiment (opens offline)",
                 cmd_report)
    s.add_argument("path", help="a run folder, or an experiment folder holding runs")
    s.add_argument("out", help="the HTML file to write")

    s = _command(sub, "workshop", "write the learner edition of the workshop notebooks (solutions and "
                 "answer keys removed, outputs cleared)", cmd_workshop)
    s.add_argument("edition", choices=["learner"], help="which edition to write")
    s.add_argument("out", help="a new or empty folder (or an earlier learner edition, refreshed)")
    s.add_argument("--source", default=None, help="the notebooks folder (None: the repository's)")

    from .classroom.cli import add_parser as add_class_parser

    add_class_parser(sub, _command)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, FileExistsError) as err:  # bad data; a finished run in the way
        return _err(str(err))
    except KeyboardInterrupt:
        return _err("interrupted", 130)
    except Exception as err:  # a person reads this, not a developer: one line, no traceback
        from .models import ModelError
        if isinstance(err, ModelError):
            return _err(str(err), 1)
        if os.environ.get("SFT_LAB_DEBUG"):
            raise
        return _err(f"{type(err).__name__}: {err} (set SFT_LAB_DEBUG=1 for the traceback)", 1)


if __name__ == "__main__":
    sys.exit(main())
