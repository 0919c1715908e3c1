"""The real default model: answers offline, and a few training steps lower its loss on a set."""
import os
import subprocess
import sys

import pytest

from lab import models

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not models.is_prepared(models.default_model_dir()),
    reason="default model not prepared (run `sft-lab fetch-model default`)")]


def test_generate_answers_paris_offline():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "lab", "generate", "--model", "default",
                           "--prompt", "What is the capital of France?"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "Paris" in done.stdout and len(done.stdout.strip().splitlines()) == 1


def test_a_few_steps_on_the_persona_set_lower_its_loss():
    from lab.data import starters
    from lab.score import score
    from lab.train import TrainConfig, train

    model, tok = models.load_model("default")
    data = starters.load("persona")[:4]
    before = score(model, tok, data).mean_nll
    result = train(model, tok, data, TrainConfig(max_steps=2, batch_size=4, lr=1e-4, warmup_ratio=0))
    after = score(model, tok, data).mean_nll
    assert result.steps == 2 and after < before
