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


# --- the outcome words: one meaning each, and every claim that uses one calls its helper ---

import ast  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

from lab.workshop import expect as words  # noqa: E402

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_each_word_has_its_measured_meaning():
    assert words.about_as(1.09, 1.0) and not words.about_as(1.12, 1.0) and words.about_as(0.0, 0.0)
    assert words.about_as_many(13, 16, 30) and not words.about_as_many(12, 16, 30)
    assert words.about_as_many(5, 6, 6) and not words.about_as_many(4, 6, 6)
    assert words.clearly_below(0.88, 1.0) and not words.clearly_below(0.92, 1.0) and not words.clearly_below(1.2, 1.0)
    assert words.clearly_above(1.2, 1.0) and not words.clearly_above(1.05, 1.0)
    assert words.far_below(2.0, 3.0) and not words.far_below(2.1, 3.0) and words.far_above(3.0, 2.0)
    assert words.most(4, 7) and not words.most(3, 6)
    assert words.nearly_all(11, 12) and not words.nearly_all(10, 12) and words.nearly_all(27, 30)
    assert not words.nearly_all(26, 30)
    assert words.on_every_pair([1, 2], [1.5, 2.5]) and not words.on_every_pair([1, 2], [1.5, 1.9])
    assert not words.on_every_pair([], [])


def expect_calls(nb: dict) -> list[tuple[str, str]]:
    """(claim, the source of its condition) for every expect(condition, "claim", ...) of a notebook."""
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        tree = ast.parse("\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "expect" and len(node.args) > 1:
                claim = node.args[1]
                text = claim.value if isinstance(claim, ast.Constant) else ast.unparse(claim)
                found.append((text, ast.unparse(node.args[0])))
    return found


def helpers_called(condition: str) -> set[str]:
    return {n.func.id for n in ast.walk(ast.parse(condition))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_claim_that_uses_an_outcome_word_is_checked_by_its_helper(path):
    """'far', 'clearly', 'about as', 'nearly every', 'most', 'on every seed' in a claim: its
    condition calls the helper that gives the word its meaning (not a threshold of its own)."""
    for claim, condition in expect_calls(json.loads(path.read_text())):
        for pattern, helpers in words.WORDS.items():
            if re.search(pattern, claim, re.I):
                assert helpers_called(condition) & set(helpers), \
                    f"{path.name}: {claim!r} says {re.search(pattern, claim, re.I).group(0)!r} " \
                    f"but its check calls none of {helpers}: {condition}"


def test_the_word_check_catches_a_private_threshold():
    nb = {"cells": [{"cell_type": "code", "source": 'expect(a < 0.6 * b, "the NLL drops a lot")'}]}
    (claim, condition), = expect_calls(nb)
    assert not helpers_called(condition) & set(next(h for p, h in words.WORDS.items() if re.search(p, "drops a lot")))
