"""`sft-lab class ...`: make a challenge, submit a dataset to it, print its gallery.

    sft-lab class new DIR --starter support [--budget 20] [--model default]
    sft-lab class check DIR
    sft-lab class submit DIR data.jsonl --name NAME [--keep-weights]
    sft-lab class gallery DIR [--html OUT] [--json]
"""
from __future__ import annotations

import json
import sys


def cmd_new(args) -> int:
    from .challenge import new

    ch = new(args.dir, args.starter, budget=args.budget, model=args.model)
    print(f"{args.dir}: challenge '{ch.title}' ({ch.model}, at most {ch.budget} examples, "
          f"{len(ch.probes)} public probes, {len(ch.held_out)} held-out, "
          f"{sum(len(p.checks) for p in ch.held_out)} held-out checks)")
    return 0


def cmd_check(args) -> int:
    from .challenge import load

    ch = load(args.dir)
    print(json.dumps(ch.public()))
    return 0


def cmd_submit(args) -> int:
    from ..data.dataio import read_dataset
    from .challenge import load
    from .submit import check_data, submit

    from ..train import Callback
    from .store import BadName, sanitise
    from .submit import OverBudget

    ch = load(args.dir)
    try:  # the data, the budget and the name are checked before the model loads
        data = check_data(ch, read_dataset(args.data))
        sanitise(args.name)
    except (OverBudget, BadName) as err:
        print(f"sft-lab: {args.data}: {err}", file=sys.stderr)
        return 2

    class Progress(Callback):
        def on_step(self, info):
            print(f"step {info.step}/{info.total_steps} loss {info.loss:.3f}", file=sys.stderr)

    row = submit(ch, data, args.name, keep_weights=args.keep_weights, callbacks=[Progress()],
                 on_stage=lambda text: print(text, file=sys.stderr))
    s = row["scores"]
    print(f"{row['name']}: held-out NLL {s['held_out_nll']:.3f}, checks passed {s['checks_passed']} of "
          f"{s['checks_total']}, rank {row['rank']} of {row['of']} ({row['path']})", file=sys.stderr)
    print(json.dumps({k: row.get(k) for k in ("name", "folder", "path", "rank", "of", "scores")}))
    return 0


def cmd_gallery(args) -> int:
    from .gallery import export_html, flat, leaderboard, table_text

    board = leaderboard(args.dir)
    if args.json:
        for r in board["rows"]:
            print(json.dumps(flat(r)))
    else:
        print(table_text(board))
    if args.html:
        print(f"wrote {export_html(args.dir, args.html)}", file=sys.stderr)
    return 0


def add_parser(sub, command) -> None:
    """Register `class` and its subcommands on the `sft-lab` parser (`command` makes one)."""
    from ..data import starters

    c = command(sub, "class", "a class challenge: every participant's dataset trained the same way, "
                "one gallery", lambda args: (c.print_help(), 2)[1])
    inner = c.add_subparsers(dest="class_command", required=True, metavar="ACTION",
                             help="new, check, submit or gallery")
    s = command(inner, "new", "make a challenge folder from a starter set (its probes split into "
                "public and held-out)", cmd_new)
    s.add_argument("dir", help="the challenge folder to make (a new or empty folder)")
    s.add_argument("--starter", default="support", choices=[n for n in starters.names() if starters.probes(n)],
                   help="the starter set whose task and probes it takes")
    s.add_argument("--budget", type=int, default=20, help="most examples a submitted dataset may hold")
    s.add_argument("--model", default="default", help="the model every submission tunes")
    s = command(inner, "check", "validate a challenge folder; print what participants see (JSON)", cmd_check)
    s.add_argument("dir", help="the challenge folder")
    s = command(inner, "submit", "train a dataset the challenge's way, score it on the held-out set and "
                "file it as a submission", cmd_submit)
    s.add_argument("dir", help="the challenge folder")
    s.add_argument("data", help="the dataset (any format the lab reads)")
    s.add_argument("--name", required=True, default=None, help="your name (the submission's folder name)")
    s.add_argument("--keep-weights", action="store_true", help="keep the tuned model in the submission folder")
    s = command(inner, "gallery", "print the challenge's leaderboard", cmd_gallery)
    s.add_argument("dir", help="the challenge folder")
    s.add_argument("--html", default=None, metavar="OUT", help="also write the class as one offline HTML file")
    s.add_argument("--json", action="store_true", help="one JSON row per participant instead of a table")
