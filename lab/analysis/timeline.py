"""Watch a run change the model: probe replies, probe NLLs and the forgetting meter at a few
steps of the run.

`Timeline` is a training callback. At K points (step 0 before any update, evenly spaced
steps, the last step) it lets the model answer the probe prompts (greedy, a bounded number of
tokens, batched as `lab.generate` does), scores the probes' reference answers, and, with the
meter on, the retention set (`lab.analysis.forgetting`). Each point is one line of `timeline.jsonl` in
the run folder, written as it happens: a stopped or killed run keeps the points it reached.

Step 0 and the last point see the fp32 model (before the weights are split, after they are
joined again), so their replies are exactly the base and tuned replies of a comparison with the
same settings; points in between see the weights the run computes with (bf16 where the
hardware has it), which may change a token here and there.

When the run starts from an unchanged copy of a model it keeps (`start_model`, the session's
base model), step 0 is taken from that copy right after the first step: the first loss point
does not wait for the timeline. Step 0 of a base model and its answers to the retention
questions are the same for every run with the same probes and settings: `BaseCache` keeps them
on disk, per model file, so only the first such run on a machine computes them.

>>> point_steps(10, 6)
[0, 2, 4, 6, 8, 10]
>>> point_steps(3, 6), point_steps(40, 2), point_steps(40, 0)
([0, 1, 2, 3], [0, 40], [])
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import runs
from ..atomic import write_json
from .forgetting import Meter
from ..generate import GenConfig, generate
from ..masks import encode
from ..records import Conversation
from ..score import score_encoded
from ..train import Callback, StepInfo, TrainResult


@dataclass
class TimelineConfig:
    points: int = 6            # K: step 0, evenly spaced steps, the last step (0 = off)
    max_new_tokens: int = 32   # reply length at each point (short: training waits for it)
    max_probes: int = 6        # probes answered at each point (the first ones given)
    retention: bool = True     # the forgetting meter's NLL at each point


def point_steps(total: int, k: int) -> list[int]:
    """The steps of K timeline points over a run of `total` steps (step 0 = before training)."""
    if k <= 0:
        return []
    if k == 1:
        return [total]
    return sorted({round(i * total / (k - 1)) for i in range(k)})


class BaseCache:
    """Step 0 and the meter's answers of a base model, on disk under the lab's cache folder.

    The key covers everything they depend on: the model file (path, size, modification time),
    the probes, the timeline settings, the retention set, the precision, the torch version and
    the lab's own code; any change gives a new key, so a stale entry is never read. A model
    without a weights file of its own (a hub id, the tiny random model) has no cache (`path`
    is None)."""

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
        digest = hashlib.sha256(json.dumps({
            "model": [str(weights.resolve()), stat.st_size, stat.st_mtime_ns],
            "probes": [p.to_json() for p in probes[: cfg.max_probes]],
            "settings": [cfg.max_new_tokens, cfg.max_probes, cfg.retention],
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
                 start_point: dict | None = None, on_point: Callable[[dict], None] | None = None):
        """`base_answers`: the base model's `Meter.answers` when known, else they are taken from
        `answers_model` (default: the model at step 0); the last point compares the tuned
        model's answers with them. `start_model`: a model equal to the run's starting weights
        that training leaves alone (see the module's docstring). `start_point`: step 0's row
        when known (`BaseCache`), used as it is."""
        self.model, self.tokenizer = model, tokenizer
        self.cfg = cfg or TimelineConfig()
        self.probes = [p if isinstance(p, Conversation) else Conversation.single(p)
                       for p in probes][: self.cfg.max_probes]
        self.meter = meter if self.cfg.retention else None
        if self.cfg.retention and self.meter is None:
            self.meter = Meter(tokenizer)
        self.out_dir = Path(out_dir) if out_dir else None
        self.on_point = on_point
        self.base_answers = base_answers
        self.answers_model, self.start_model, self.start_point = answers_model, start_model, start_point
        self._deferred = False  # step 0 still to take, from start_model
        self.points: list[dict] = []
        self.steps: list[int] = []
        self._scored = [(i, encode(p, tokenizer, 512)) for i, p in enumerate(self.probes) if p.response]

    def on_start(self, total_steps: int, n_examples: int) -> None:
        self.steps = point_steps(total_steps, self.cfg.points)
        known = self.start_point is not None and (self.meter is None or self.base_answers is not None)
        if known and self.steps and self.steps[0] == 0:
            self._write({**self.start_point, "step": 0, "seconds": 0.0, "cached": True})
        elif self.start_model is not None:
            self._deferred = bool(self.steps)
        else:
            self._start(self.model)

    def _start(self, model) -> None:
        """The base answers (when the meter needs them) and step 0, from `model`."""
        if self.meter is not None and self.steps and self.base_answers is None:
            self.base_answers = self.meter.answers(self.answers_model or model)
        if self.steps and self.steps[0] == 0:
            self.record(0, model=model)

    def on_step(self, info: StepInfo) -> None:
        if self._deferred:
            self._deferred = False
            self._start(self.start_model)
        if info.step in self.steps and info.step != self.steps[-1]:
            self.record(info.step)

    def on_end(self, result: TrainResult) -> None:
        if result.steps and self.steps and result.steps == self.steps[-1]:
            self.record(result.steps, final=True)  # the last point: on the joined fp32 weights

    @property
    def forgetting(self) -> dict | None:
        """The meter's report after the run (accuracy base vs tuned, flipped questions), or
        None when the run did not reach its last point or the meter is off."""
        last = self.points[-1] if self.points else None
        return last.get("forgetting") if last else None

    def record(self, step: int, final: bool = False, model=None) -> dict:
        """Take one point now: replies, probe NLLs and the meter, for the model as it is (or
        `model`); the final point also checks the retention answers against the base model's."""
        t0 = time.perf_counter()
        model = model if model is not None else self.model
        gen = GenConfig(max_new_tokens=self.cfg.max_new_tokens, batch_size=len(self.probes) or 1)
        replies = generate(model, self.tokenizer, self.probes, gen) if self.probes else []
        nll: list[float | None] = [None] * len(self.probes)
        if self._scored:
            scores = score_encoded(model, [e for _, e in self._scored], self.tokenizer.pad_token_id)
            for (i, _), value in zip(self._scored, scores.per_example):
                nll[i] = value
        row = {"step": step, "prompts": [p.prompt for p in self.probes], "replies": replies,
               "probe_nll": nll, "seconds": 0.0}
        scored = [v for v in nll if v is not None]
        row["mean_probe_nll"] = sum(scored) / len(scored) if scored else None
        if self.meter is not None:
            row["retention"] = self.meter.nll(model)
            if final and self.base_answers is not None:
                row["forgetting"] = self.meter.report(self.base_answers, self.meter.answers(model))
        row["seconds"] = time.perf_counter() - t0
        self._write(row)
        return row

    def _write(self, row: dict) -> None:
        """Keep a point, append it to the run's timeline.jsonl and tell `on_point`."""
        self.points.append(row)
        if self.out_dir is not None:
            log = runs.Log(self.out_dir / runs.TIMELINE)
            log.write(row)
            log.close()
        if self.on_point is not None:
            self.on_point(row)


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
