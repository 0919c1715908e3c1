"""Watch a run change the model: probe replies, probe NLLs and the forgetting meter at a few
steps of the run, within a set share of the run's own training time.

`Timeline` is a training callback. At each point it lets the model answer the probe prompts
(greedy, short replies, batched as `lab.generate` does), scores the probes' reference answers
and, with the meter on, a fixed third of the retention set (`lab.analysis.forgetting`). Each
point is one line of `timeline.jsonl` in the run folder, written as it happens: a stopped or
killed run keeps the points it reached.

Where the points go: step 0 and the last step always; in between, by default (`points="auto"`),
as many as fit a quarter of the run's training time. After each training step the timeline
knows what a step costs and what its points cost (the first point measured, or step 0's parts
as `BaseCache` kept them), keeps the last point's share aside and places the next point where
the ones that still fit are evenly spread; a short run may get none. `points=K` places K evenly.

The first and the last point are the Compare tab's columns: they answer every probe given
with the Compare tab's decoding (greedy, `REPLY_TOKENS`), kept under "full"; the short replies
the slider shows are the first `max_new_tokens` tokens of those (a greedy reply's start is the
shorter reply). `lab.session.Session.reply` hands them out instead of decoding again, so those
replies cost the participant nothing extra and are not counted in the budget. The first and
last points also score the whole retention set ("retention_all"), and the last compares the
meter's answers with the base model's.

Step 0 and the last point see the fp32 model (before the weights are split, after they are
joined again), so their replies are exactly the base and tuned replies of a comparison; points
in between see the weights the run computes with (bf16 where the hardware has it).

When the run starts from an unchanged copy of a model it keeps (`start_model`, the session's
base model), step 0 is taken from that copy right after the first step: the first loss point
does not wait for the timeline. Step 0 of a base model and its answers to the retention
questions are the same for every run with the same probes and settings: `BaseCache` keeps them
on disk, per model file, and `prepare` (run by `sft-lab fetch-model`) computes them for every
starter's probes at set-up, so even a first run finds them.

>>> point_steps(10, 6)
[0, 2, 4, 6, 8, 10]
>>> point_steps(3, 6), point_steps(40, 2), point_steps(40, 0)
([0, 1, 2, 3], [0, 40], [])
>>> next_point(step=1, total=10, room=20.0, cost=4.0, most=12)
3
>>> next_point(step=1, total=10, room=3.0, cost=4.0, most=12) is None
True
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .. import runs
from ..atomic import write_json
from .forgetting import Meter
from ..generate import REPLY_TOKENS, GenConfig, as_conversation, decode, generate, generate_ids
from ..masks import encode
from ..records import Conversation
from ..score import score_encoded
from ..train import Callback, StepInfo, TrainResult

AUTO = "auto"


@dataclass
class TimelineConfig:
    points: int | str = AUTO   # "auto": step 0, the last step and as many between as `budget` allows; K: K evenly spaced; 0: off
    budget: float = 0.25       # with "auto": the share of the run's training time the points may take
    most: int = 12             # with "auto": at most this many points in all
    max_new_tokens: int = 32   # the slider's replies at each point (short: training waits for them)
    max_probes: int = 6        # probes answered and scored at each point (the first ones given)
    retention: bool = True     # the forgetting meter at each point
    reply_tokens: int = REPLY_TOKENS  # the first and last points' full replies: the Compare tab's

    def __post_init__(self):
        if self.points != AUTO and not (isinstance(self.points, int) and self.points >= 0):
            raise ValueError(f"timeline points must be 'auto' or a whole number >= 0 (0 = off), "
                             f"not {self.points!r}")

    @property
    def on(self) -> bool:
        return self.points == AUTO or self.points > 0


def point_steps(total: int, k: int) -> list[int]:
    """The steps of K timeline points over a run of `total` steps (step 0 = before training)."""
    if k <= 0:
        return []
    if k == 1:
        return [total]
    return sorted({round(i * total / (k - 1)) for i in range(k)})


def next_point(step: int, total: int, room: float, cost: float, most: int) -> int | None:
    """The step of the next point between `step` (just done) and the last step `total`, when
    `room` seconds fit at least one more point of `cost` seconds (and `most` allows one): the
    points that fit, evenly spread over the steps left; None when none fits."""
    fit = min(int(room // cost) if cost > 0 else most, most, total - step - 1)
    if fit < 1:
        return None
    return step + max(1, round((total - step) / (fit + 1)))


def _seen(conv: Conversation) -> dict:
    """What the model sees of a prompt (its messages up to the reply, and its tools): two
    prompts that look the same to the model get the same reply."""
    c = conv.prompt_only()
    return {"messages": c.messages(), **({"tools": c.tool_list()} if c.tools else {})}


def full_replies(point: dict, max_new_tokens: int) -> dict[str, str]:
    """{prompt key: reply} of a first or last point's full replies, when they were decoded
    greedily with `max_new_tokens` (else empty): what `Session.reply` may reuse."""
    full = point.get("full") or {}
    if full.get("max_new_tokens") != max_new_tokens:
        return {}
    return {json.dumps(r["conversation"], sort_keys=True): r["reply"] for r in full.get("rows", [])}


def reply_key(prompt) -> str:
    """The key `full_replies` files a prompt (text or Conversation) under."""
    return json.dumps(_seen(as_conversation(prompt)), sort_keys=True)


class BaseCache:
    """Step 0 and the meter's answers of a base model, on disk under the lab's cache folder.

    The key covers everything they depend on: the model file (path, size, modification time),
    the probes, the timeline's reply and meter settings, the retention set, the precision, the
    torch version and the lab's own code; any change gives a new key, so a stale entry is never
    read. A model without a weights file of its own (a hub id, the tiny random model) has no
    cache (`path` is None)."""

    CODE = ("analysis/timeline.py", "analysis/forgetting.py", "generate.py", "score.py", "masks.py", "objective.py",
            "engine/llama.py", "engine/torch_ops.py", "engine/tokenizer.py", "engine/device.py")

    def __init__(self, model_name: str, probes: list[Conversation], cfg: TimelineConfig,
                 device_kind: str):
        import torch

        from ..engine.device import autocast_dtype
        from .forgetting import RETENTION
        from ..models import TINY, cache_dir, resolve

        self.path: Path | None = None
        weights = Path(resolve(model_name)) / "model.safetensors"
        if model_name == TINY or not weights.is_file():
            return
        here = Path(__file__).parents[1]  # lab/
        stat = weights.stat()
        settings = {k: v for k, v in asdict(cfg).items() if k not in ("points", "budget", "most")}
        digest = hashlib.sha256(json.dumps({
            "model": [str(weights.resolve()), stat.st_size, stat.st_mtime_ns],
            "probes": [as_conversation(p).to_json() for p in probes],
            "settings": settings,
            "precision": [device_kind, str(autocast_dtype(torch.device(device_kind))), torch.__version__],
        }, sort_keys=True).encode())
        for path in [*(here / c for c in self.CODE), *sorted(RETENTION.glob("*.jsonl"))]:
            digest.update(path.read_bytes())
        self.path = cache_dir() / "timeline" / f"{digest.hexdigest()[:32]}.json"

    def load(self) -> dict | None:
        """{"point": step 0's row, "answers": the meter's base answers or None}, or None."""
        if self.path is None or not self.path.is_file():
            return None
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):  # unreadable: computed again and written over
            return None

    def save(self, point: dict, answers: dict | None) -> None:
        if self.path is not None:
            try:
                write_json(self.path, {"point": point, "answers": answers})
            except OSError:  # a read-only cache folder costs time, not correctness
                pass


class Timeline(Callback):
    """Records the timeline of one run; `points` holds what it recorded, `on_point(row)` hears
    each new point (from the training thread)."""

    def __init__(self, model, tokenizer, probes: list[Conversation], cfg: TimelineConfig | None = None,
                 *, out_dir: str | Path | None = None, meter: Meter | None = None,
                 base_answers: dict | None = None, answers_model=None, start_model=None,
                 start_point: dict | None = None, from_base: bool = False,
                 on_point: Callable[[dict], None] | None = None):
        """`base_answers`: the base model's `Meter.answers` when known, else they are taken from
        `answers_model` (default: the model at step 0); the last point compares the tuned
        model's answers with them. `start_model`: a model equal to the run's starting weights
        that training leaves alone (see the module's docstring). `start_point`: step 0's row
        when known (`BaseCache`), used as it is. `from_base`: the run starts from the base
        model's weights (step 0's replies are the base model's)."""
        self.model, self.tokenizer = model, tokenizer
        self.cfg = cfg or TimelineConfig()
        self.all_probes = [as_conversation(p) for p in probes]
        self.probes = self.all_probes[: self.cfg.max_probes]
        self.meter = meter if self.cfg.retention else None
        if self.cfg.retention and self.meter is None:
            self.meter = Meter(tokenizer)
        self.out_dir = Path(out_dir) if out_dir else None
        self.on_point = on_point
        self.base_answers = base_answers
        self.answers_model, self.start_model, self.start_point = answers_model, start_model, start_point
        self.from_base = from_base
        self._deferred = False  # step 0 still to take, from start_model
        self.points: list[dict] = []
        self.steps: list[int] = []
        self.total = 0
        self.spent = 0.0        # seconds of the points counted against the budget
        self._own = 0.0         # seconds of the points since the last step (to tell training time apart)
        self._clock = 0.0       # when the last step ended
        self._durations: list[float] = []  # each training step's own seconds
        self._scale: float | None = None   # this machine's pace now against a kept step 0's (`_speed`)
        self._scored = [(i, encode(p, tokenizer, 512)) for i, p in enumerate(self.probes) if p.response]

    # -- where the points go ----------------------------------------------------------------
    def on_start(self, total_steps: int, n_examples: int) -> None:
        self.total, self._clock, self._durations = total_steps, time.perf_counter(), []
        if self.cfg.points == AUTO:
            self.steps = [0, total_steps] if total_steps else []
        else:
            self.steps = point_steps(total_steps, self.cfg.points)
        known = self.start_point is not None and (self.meter is None or self.base_answers is not None)
        if known and self.steps and self.steps[0] == 0:
            self._write({**self.start_point, "step": 0, "seconds": 0.0, "counted": 0.0, "cached": True})
        elif self.start_model is not None:
            self._deferred = bool(self.steps)
        elif self.steps and self.steps[0] == 0:
            self.record(0, end=True)

    def on_step(self, info: StepInfo) -> None:
        now = time.perf_counter()
        self._durations.append(now - self._clock - self._own)  # this step's own time
        self._clock, self._own = now, 0.0
        if self._deferred:
            self._deferred = False
            if self.steps[0] == 0:
                self.record(0, model=self.start_model, end=True)
        if self.cfg.points == AUTO and 0 < info.step < self.total and self._fits(info.step):
            self.steps.insert(-1, info.step)
        if info.step in self.steps and info.step != self.steps[-1]:
            self.record(info.step)

    def on_end(self, result: TrainResult) -> None:
        if result.steps and self.steps and result.steps == self.steps[-1]:
            self.record(result.steps, end=True, final=True)  # on the joined fp32 weights

    def _fits(self, step: int) -> bool:
        """With points by budget: take a point at `step` when one more fits the budget (after
        the last point's share) and `step` is where the points that fit, spread evenly over
        the steps left since the last point, would put the next one. Decided afresh at every
        step, from the median step so far (the first step's warm-up and a busy moment of the
        machine do not count as the run's pace), with a tenth of the budget kept aside for
        steps and points that take longer than the ones measured."""
        per_step = sorted(self._durations)[len(self._durations) // 2]
        room = 0.9 * self.cfg.budget * per_step * self.total - self.spent - self._end_cost(per_step)
        since = max(s for s in self.steps if s <= step) if any(s <= step for s in self.steps) else 0
        at = next_point(since, self.total, room, self._point_cost(per_step), self.cfg.most - len(self.steps))
        return at is not None and step >= at

    def _point_cost(self, per_step: float) -> float:
        """What a point between costs: the last one measured, else step 0's parts scaled to a
        point's shorter replies and fewer probes (and to this machine's pace now, when they
        were kept from set-up), else a training step's time."""
        between = [p for p in self.points if p.get("parts") and not p.get("full")]
        if between:
            return between[-1]["counted"]
        mid, _ = self._costs_from_step_0()
        return mid if mid is not None else per_step

    def _end_cost(self, per_step: float) -> float:
        """The last point's counted seconds (its NLLs, the whole meter and its answers): step
        0's parts give its ratio to a point between; two points' worth when they do not say."""
        mid, end = self._costs_from_step_0()
        if mid is None or not mid:
            return 2 * self._point_cost(per_step)
        return end / mid * self._point_cost(per_step)

    def _costs_from_step_0(self) -> tuple[float | None, float | None]:
        """(a point between, the last point) in seconds as step 0's parts foretell them."""
        first = self.points[0] if self.points and self.points[0]["step"] == 0 else None
        parts = (first or {}).get("parts")
        if not parts:
            return None, None
        share = (self.cfg.max_new_tokens / self.cfg.reply_tokens) * (len(self.probes) / max(1, len(self.all_probes)))
        mid = parts.get("replies", 0.0) * share + parts.get("nll", 0.0) + parts.get("meter_few", 0.0)
        end = sum(v for k, v in parts.items() if k != "replies")
        return mid * self._speed(parts), end * self._speed(parts)

    def _speed(self, parts: dict) -> float:
        """How much longer step 0's parts would take now than when they were timed: 1 for a
        step 0 timed in this run; for one kept from set-up (maybe on a busier or quieter
        machine), the probes' NLL is scored once more and timed against its kept time."""
        first = self.points[0]
        if not first.get("cached") or not self._scored or not parts.get("nll"):
            return 1.0
        if self._scale is None:
            t = time.perf_counter()
            score_encoded(self.model, [e for _, e in self._scored], self.tokenizer.pad_token_id)
            seconds = time.perf_counter() - t
            self.spent += seconds
            self._own += seconds
            self._scale = seconds / parts["nll"]
        return self._scale

    @property
    def forgetting(self) -> dict | None:
        """The meter's report after the run (accuracy base vs tuned, flipped questions), or
        None when the run did not reach its last point or the meter is off."""
        last = self.points[-1] if self.points else None
        return last.get("forgetting") if last else None

    # -- one point --------------------------------------------------------------------------
    def record(self, step: int, model=None, end: bool = False, final: bool = False,
               retention: dict | None = None) -> dict:
        """Take one point now, for the model as it is (or `model`). `end`: a first or last
        point (full replies to every probe, the whole retention set; the base model's answers
        at the first, the tuned model's checked against them at the last); `retention`: the
        meter's NLLs when already known for this model (set-up reuses them across probe sets)."""
        t0 = time.perf_counter()
        model = model if model is not None else self.model
        parts: dict[str, float] = {}
        row: dict = {"step": step, "prompts": [p.prompt for p in self.probes]}
        if end and self.all_probes:
            ids = generate_ids(model, self.tokenizer, self.all_probes,
                               GenConfig(max_new_tokens=self.cfg.reply_tokens, batch_size=len(self.all_probes)))
            row["replies"] = [decode(self.tokenizer, r[: self.cfg.max_new_tokens]) for r in ids[: len(self.probes)]]
            row["full"] = {"max_new_tokens": self.cfg.reply_tokens,
                           "rows": [{"conversation": _seen(c), "reply": decode(self.tokenizer, r)}
                                    for c, r in zip(self.all_probes, ids)]}
            if step == 0 and self.from_base:
                row["base"] = True
        else:
            gen = GenConfig(max_new_tokens=self.cfg.max_new_tokens, batch_size=len(self.probes) or 1)
            row["replies"] = generate(model, self.tokenizer, self.probes, gen) if self.probes else []
        parts["replies"] = time.perf_counter() - t0
        t = time.perf_counter()
        nll: list[float | None] = [None] * len(self.probes)
        if self._scored:
            scores = score_encoded(model, [e for _, e in self._scored], self.tokenizer.pad_token_id)
            for (i, _), value in zip(self._scored, scores.per_example):
                nll[i] = value
        scored = [v for v in nll if v is not None]
        row.update(probe_nll=nll, mean_probe_nll=sum(scored) / len(scored) if scored else None)
        parts["nll"] = time.perf_counter() - t
        if self.meter is not None:
            t = time.perf_counter()
            row["retention"] = self.meter.nll(model, few=True) if retention is None else retention["retention"]
            parts["meter_few"] = time.perf_counter() - t
            if end:
                t = time.perf_counter()
                row["retention_all"] = self.meter.nll(model) if retention is None else retention["retention_all"]
                parts["meter_all"] = time.perf_counter() - t
            t = time.perf_counter()
            if end and not final and self.base_answers is None:
                self.base_answers = self.meter.answers(self.answers_model or model)
                parts["answers"] = time.perf_counter() - t
            if final and self.base_answers is not None:
                row["forgetting"] = self.meter.report(self.base_answers, self.meter.answers(model))
                parts["answers"] = time.perf_counter() - t
        row["seconds"] = time.perf_counter() - t0
        row["counted"] = row["seconds"] - (parts["replies"] if end else 0.0)
        row["parts"] = parts
        self._write(row)
        return row

    def _write(self, row: dict) -> None:
        """Keep a point, append it to the run's timeline.jsonl and tell `on_point`."""
        self.points.append(row)
        self.spent += row.get("counted", row["seconds"]) if not row.get("cached") else 0.0
        self._own += row["seconds"]
        if self.out_dir is not None:
            log = runs.Log(self.out_dir / runs.TIMELINE)
            log.write(row)
            log.close()
        if self.on_point is not None:
            self.on_point(row)


def prepare(model_name: str, probe_sets: list[list[Conversation]], cfg: TimelineConfig | None = None,
            *, on_progress: Callable[[int, int], None] | None = None) -> int:
    """Fill `BaseCache` for `model_name` with step 0 of each probe set and the meter's base
    answers (what a first run would otherwise compute); return how many entries were made.
    The meter's NLLs and answers are computed once and shared by every set."""
    from ..models import load_model

    cfg = cfg or TimelineConfig()
    model, tok = load_model(model_name)
    device = next(model.parameters()).device.type
    meter = Meter(tok) if cfg.retention else None
    answers, retention, shared, made = None, None, {}, 0
    for n, probes in enumerate(probe_sets, 1):
        cache = BaseCache(model_name, probes, cfg, device)
        if cache.path is not None and cache.load() is None:
            tl = Timeline(model, tok, probes, cfg, meter=meter, base_answers=answers, from_base=True)
            row = tl.record(0, end=True, retention=retention)
            if meter is not None and retention is None:  # the first set: the meter's own cost, kept
                retention = {k: row[k] for k in ("retention", "retention_all")}
                shared = {k: row["parts"][k] for k in ("meter_few", "meter_all", "answers")}
            row["parts"].update(shared)  # what a run would spend on the meter at step 0
            answers = tl.base_answers
            cache.save({k: v for k, v in row.items() if k not in ("step", "seconds")}, answers)
            made += 1
        if on_progress is not None:
            on_progress(n, len(probe_sets))
    return made


def load(run_path: str | Path) -> list[dict]:
    """The timeline of a stored run (empty when it recorded none): one dict per point."""
    return runs.read_jsonl(Path(run_path) / runs.TIMELINE)


def replies_at(points: list[dict], index: int) -> list[dict]:
    """Each probe's reply at point `index`, with the reply of the point before (None at the
    first point): what the timeline slider shows.

    >>> pts = [{"step": 0, "prompts": ["Hi"], "replies": ["Hello."]},
    ...        {"step": 5, "prompts": ["Hi"], "replies": ["Arr! Hello."]}]
    >>> replies_at(pts, 1)
    [{'prompt': 'Hi', 'reply': 'Arr! Hello.', 'before': 'Hello.', 'step': 5, 'before_step': 0}]
    """
    point = points[index]
    before = points[index - 1] if index > 0 else None
    return [{"prompt": p, "reply": r, "before": before["replies"][i] if before else None,
             "step": point["step"], "before_step": before["step"] if before else None}
            for i, (p, r) in enumerate(zip(point["prompts"], point["replies"]))]
