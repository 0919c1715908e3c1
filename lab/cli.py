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

from .records import DataError


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


def _read(path: str, *, trainable: bool = False):
    from .dataio import read_dataset

    convs = read_dataset(path)
    if trainable and not any(c.is_trainable for c in convs):
        raise DataError("no example has an assistant reply to train on", source=path)
    return convs


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
    return 0


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
    from .train import TrainConfig, train

    from .runs import check_free

    data = _read(args.data, trainable=True)
    eval_data = _read(args.eval, trainable=True) if args.eval else None
    probes = _read(args.probes) if args.probes else []
    if args.timeline and not probes and not args.retention:
        raise DataError("--timeline needs --probes FILE (prompts, with reference answers to score) "
                        "or --retention (the forgetting meter)")
    check_free(args.out, overwrite=args.overwrite)  # before the model is loaded
    cfg = TrainConfig(epochs=args.epochs, max_steps=args.max_steps, lr=args.lr,
                      batch_size=args.batch_size, max_length=args.max_length, seed=args.seed,
                      completion_only=not args.full_loss, eval_split=args.eval_split)
    from .models import load_model

    _quiet_transformers()
    model, tok = load_model(args.model)
    callbacks = [_Bar()]
    if args.timeline:
        from .timeline import Timeline, TimelineConfig

        callbacks.append(Timeline(model, tok, probes, TimelineConfig(points=args.timeline,
                                                                     retention=args.retention,
                                                                     max_probes=len(probes)),
                                  out_dir=args.out))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes on truncation are in the validate command
        result = train(model, tok, data, cfg, eval_data=eval_data, callbacks=callbacks,
                       out_dir=args.out, overwrite=args.overwrite)
    summary = result.summary()
    if args.timeline and callbacks[1].forgetting:
        summary["forgetting"] = callbacks[1].forgetting
    print(json.dumps(summary))
    return 0


def cmd_learned(args) -> int:
    from .learned import learned
    from .models import load_model

    data = _read(args.data)
    _quiet_transformers()
    base, tok = load_model(args.base)
    tuned, _ = load_model(args.tuned)
    print(json.dumps(learned(base, tuned, tok, data, top=args.top, max_length=args.max_length),
                     ensure_ascii=False))
    return 0


def cmd_compare(args) -> int:
    from .generate import GenConfig, generate
    from .models import load_model

    prompts = [c.prompt_only() for c in _read(args.prompts)]
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

    data = _read(args.data, trainable=True)
    _quiet_transformers()
    model, tok = load_model(args.model)
    print(json.dumps(score(model, tok, [c for c in data if c.is_trainable], args.max_length).to_json()))
    return 0


def cmd_validate(args) -> int:
    from .validate import check_dataset

    data = _read(args.data)
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
    print(f"run it with: trl sft --config {path}", file=sys.stderr)
    return 0


def cmd_workshop(args) -> int:
    from .editions import write_learner_edition

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

    p = argparse.ArgumentParser(prog="sft-lab", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("fetch-model", help="prepare a model for offline use (default: the default model)")
    s.add_argument("name", nargs="?", default="default")
    s.set_defaults(func=cmd_fetch_model)

    s = sub.add_parser("generate", help="print the model's reply to one user message")
    s.add_argument("--model", default="default")
    s.add_argument("--prompt", required=True)
    s.add_argument("--max-new-tokens", type=int, default=128)
    s.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("train", help="fine-tune a model on a dataset; writes a run folder")
    s.add_argument("data")
    s.add_argument("--model", default="default")
    s.add_argument("--out", required=True, help="run folder (config, metrics, dataset, model/)")
    s.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    d = TrainConfig()
    s.add_argument("--epochs", type=float, default=d.epochs)
    s.add_argument("--max-steps", type=int, default=d.max_steps)
    s.add_argument("--lr", type=float, default=d.lr)
    s.add_argument("--batch-size", type=int, default=d.batch_size)
    s.add_argument("--max-length", type=int, default=d.max_length)
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument("--eval-split", type=float, default=d.eval_split)
    s.add_argument("--eval", default=None, help="held-out data for eval loss")
    s.add_argument("--full-loss", action="store_true", help="train on every token, not only responses")
    s.add_argument("--timeline", type=int, default=0, metavar="K",
                   help="record a timeline at K points (step 0, evenly spaced, the last) into "
                        "timeline.jsonl: probe replies and NLLs (0 = off)")
    s.add_argument("--probes", default=None, metavar="FILE",
                   help="prompts for the timeline (any data format; reference answers are scored)")
    s.add_argument("--retention", action=argparse.BooleanOptionalAction, default=False,
                   help="with --timeline: the forgetting meter (retention set NLL at each point, "
                        "answers checked before and after)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("learned", help="tokens and phrases the tuning promoted and suppressed "
                                       "(JSON, last line)")
    s.add_argument("--base", required=True, help="the model before tuning (a name or folder)")
    s.add_argument("--tuned", required=True, help="the tuned model (e.g. a run's model/ folder)")
    s.add_argument("--data", required=True, help="prompts with reference answers (or without: the "
                                                 "tuned model's own replies are scored)")
    s.add_argument("--top", type=int, default=10, help="items per list")
    s.add_argument("--max-length", type=int, default=512, help="tokens per example")
    s.set_defaults(func=cmd_learned)

    s = sub.add_parser("compare", help="base and tuned replies to each prompt, one JSON line each")
    s.add_argument("--base", required=True)
    s.add_argument("--tuned", required=True)
    s.add_argument("--prompts", required=True, help="a data file; each record's user turn is a prompt")
    s.add_argument("--max-new-tokens", type=int, default=128)
    s.add_argument("--temperature", type=float, default=0.0)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("score", help="mean NLL per response token of reference answers")
    s.add_argument("--model", default="default")
    s.add_argument("--data", required=True)
    s.add_argument("--max-length", type=int, default=512)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("validate", help="problems, warnings and stats of a dataset")
    s.add_argument("data")
    s.add_argument("--model", default=None, help="count tokens with this model's tokenizer")
    s.add_argument("--max-length", type=int, default=256)
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("runs", help="list stored runs (run cards under a folder)")
    s.add_argument("--dir", default="runs")
    s.add_argument("--json", action="store_true", help="one JSON card per line")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("export-trl", help="write a run's dataset and a TRL SFTConfig YAML")
    s.add_argument("run", help="a run folder (with config.json and dataset.jsonl)")
    s.add_argument("out")
    s.add_argument("--model", default=None, help="model for TRL (default: the run's, as a hub id)")
    s.set_defaults(func=cmd_export_trl)

    s = sub.add_parser("workshop", help="write the learner edition of the workshop notebooks "
                                        "(solutions and answer keys removed, outputs cleared)")
    s.add_argument("edition", choices=["learner"])
    s.add_argument("out", help="a new or empty folder (or an earlier learner edition, refreshed)")
    s.add_argument("--source", default=None, help="the notebooks folder (default: the repository's)")
    s.set_defaults(func=cmd_workshop)
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
