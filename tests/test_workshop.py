"""The notebooks' settings and claim checks."""
import pytest

from lab.workshop.expect import ClaimFailed, expect, settings


def test_a_failed_claim_fails_in_full_mode_only(monkeypatch, capsys):
    monkeypatch.delenv("SFT_LAB_FAST", raising=False)
    with pytest.raises(ClaimFailed, match="the notebook says: replies open with 'Arr!'.*3 of 6"):
        expect(False, "replies open with 'Arr!'", measured="3 of 6")
    expect(True, "ok")
    assert capsys.readouterr().out == "checked: ok\n"
    monkeypatch.setenv("SFT_LAB_FAST", "1")
    expect(False, "replies open with 'Arr!'")
    assert capsys.readouterr().out == "not checked (fast mode): replies open with 'Arr!'\n"


def test_seed_and_model_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("SFT_LAB_FAST", raising=False)
    monkeypatch.delenv("SFT_LAB_MODEL", raising=False)
    monkeypatch.setenv("SFT_LAB_SEED", "2")
    s = settings()
    assert (s.fast, s.model, s.max_steps, s.seed) == (False, "default", None, 2)
