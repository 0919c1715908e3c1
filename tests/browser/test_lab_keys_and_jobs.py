"""In a real JupyterLab: keys stay in the lab's widgets, one job at a time across
the tabs, the lab's history after a kernel restart, and a readable word diff.

Each test runs a short copy of the quickstart notebook: its cells up to `Lab(...)`, then the
quickstart's own fast-mode settings (`max_steps`, `max_new_tokens`) without its training and
comparison cells, so every test starts from an untrained lab and trains only what it needs.

Screenshots (tests/artifacts/): keys_dataset.png, keys_compare.png (multi-line boxes after
typing); busy_experiments.png, busy_train.png, busy_compare.png, busy_stopped.png,
busy_stopped_tables.png (one job at a time); restart_before.png, restart_dataset.png,
restart_train.png, restart_compare.png, restart_loaded.png (history after a kernel restart);
word_diff.png, word_diff_table.png (the diff, its note opened); influence.png ("Which examples?").
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jupyterlab_driver import ARTIFACTS
from sftlab_ui import assert_clean, assert_fits, button, show, wait_state, watch_state, widget_errors

pytestmark = pytest.mark.browser

QUICKSTART = Path(__file__).resolve().parents[2] / "notebooks" / "00_quickstart.ipynb"
NOTEBOOK = "lab_keys_and_jobs.ipynb"
LAB = ".sftlab-app"              # Lab()'s root: the ipywidgets Tab
ANYWIDGET_ROOTS = (".sftlab-dataset", ".sftlab-train", ".sftlab-compare", ".sftlab-experiments")

RUN_ALL_S = 240
TRAIN_S = 300      # a few steps of the tiny random model on 2 busy cores
COMPARE_S = 180
QUEUE_S = 300      # the experiments queue to start, and to end after Stop

PROMPT = "What is a kettle for?"
# Enough for the tiny random model to change its sampled replies (lr 2e-4 leaves them as
# they were): a run whose replies differ from the base model's, so a diff has something to
# show and an earlier run's recorded replies cannot be mistaken for the base model's.
TRAIN_SETTINGS = {"lr": "0.02", "max-steps": "5"}


# ----------------------------------------------------------------------------- helpers

def lab_notebook(tmp_path) -> str:
    """The quickstart's cells up to and including `Lab(...)`, then its fast-mode settings."""
    nb = json.loads(QUICKSTART.read_text(encoding="utf-8"))
    cells = []
    for cell in nb["cells"]:
        cells.append(cell)
        if cell["cell_type"] == "code" and "Lab(" in "".join(cell["source"]):
            break
    else:
        pytest.fail("00_quickstart.ipynb has no cell that makes the Lab", pytrace=False)
    cells.append({"cell_type": "code", "id": "test-settings", "metadata": {},
                  "execution_count": None, "outputs": [],
                  "source": "# the quickstart's settings, without its training and comparison\n"
                            "app.trainer.max_steps = S.max_steps or 0\n"
                            "app.compare.max_new_tokens = S.max_new_tokens"})
    nb["cells"] = cells
    path = tmp_path / NOTEBOOK
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def open_lab(jlab, tmp_path):
    jlab.open_notebook(NOTEBOOK, source=lab_notebook(tmp_path))
    jlab.run_all(timeout_s=RUN_ALL_S)
    assert_clean(jlab, "after Run All")
    for sel in ANYWIDGET_ROOTS:
        jlab.wait_for(lambda sel=sel: jlab.page.locator(sel).count() > 0,
                      f"the widget {sel} to render", 60)


def mark_lab(page) -> str:
    """Tag the lab's DOM (the Tab and each anywidget root) with a token; a re-run of the cell
    or a redraw of a widget makes new elements without it."""
    token = "keys-" + str(page.evaluate("Date.now()"))
    page.evaluate("""([token, sels]) => {
        for (const sel of sels) {
            for (const el of document.querySelectorAll(sel)) el.__sftlabMarker = token;
        }
    }""", [token, [LAB, *ANYWIDGET_ROOTS]])
    return token


def lab_still_there(page, token: str) -> list[str]:
    """The roots that lost the marker (or were duplicated) since `mark_lab`; [] when intact."""
    return page.evaluate("""([token, sels]) => sels.flatMap((sel) => {
        const els = [...document.querySelectorAll(sel)];
        if (els.length !== 1) return [`${sel}: ${els.length} in the page`];
        return els[0].__sftlabMarker === token ? [] : [`${sel}: a new element (marker gone)`];
    })""", [token, [LAB, *ANYWIDGET_ROOTS]])


def notebook_snapshot(jlab) -> dict:
    cell = jlab.cell_holding(LAB)
    return {"cells": jlab.cell_count(), "lab cell": cell and cell["index"],
            "count": cell and cell["count"], "prompt": cell and cell["prompt"]}


def assert_notebook_untouched(jlab, before: dict, token: str, stage: str):
    """The Lab's cell did not re-run, no cell was added, moved or deleted, the Lab is the
    same DOM (no re-render)."""
    after = notebook_snapshot(jlab)
    gone = lab_still_there(jlab.page, token)
    if after != before or gone:
        jlab.fail(f"{stage}: the notebook changed under the widget: before {before}, after "
                  f"{after}; lab elements replaced: {gone}")


def type_three_lines(page, box, lines: tuple[str, str, str]):
    """Click in `box`, type a line, Enter, a second line, Shift+Enter, a third: as a person
    types, with a pause after the first Enter (longer than the builder's 400 ms edit delay,
    so an edit is sent to the kernel while the box still has focus)."""
    box.click()
    page.keyboard.press("End")
    page.keyboard.type(lines[0])
    page.keyboard.press("Enter")
    page.wait_for_timeout(700)
    page.keyboard.type(lines[1])
    page.keyboard.press("Shift+Enter")
    page.keyboard.type(lines[2])


def check_box(jlab, box, lines, what: str, before: dict, token: str):
    """The notebook is as it was, the box holds the three lines and still has the focus."""
    assert_notebook_untouched(jlab, before, token, f"after typing in {what}")
    value = box.input_value()
    # Chromium inserts a line break for Shift+Enter in a textarea too, as for Enter: both
    # separators are "\n" (checked here, not assumed).
    want = "\n".join(lines)
    if value != want:
        jlab.fail(f"{what}: the box should hold the three typed lines {want!r}, holds {value!r}")
    if not box.evaluate("el => el === document.activeElement"):
        focused = jlab.page.evaluate(
            "document.activeElement && document.activeElement.outerHTML.slice(0, 200)")
        jlab.fail(f"{what}: the box lost the focus while typing; focus is on {focused!r}")


def autosaved_texts(jlab) -> list[str]:
    """Every message text in the dataset's autosave file in the server root."""
    path = jlab.server.root / "sftlab_dataset.jsonl"
    if not path.is_file():
        return []
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts += [m.get("content", "") for m in json.loads(line).get("messages", [])]
    return texts


def set_number(root, cls: str, value: str):
    """Type a value in a Train/Compare setting and leave the box (the change is sent on blur)."""
    box = root.locator(f"input.sftlab-{cls}")
    box.fill(value)
    box.press("Tab")


def train(jlab, settings: dict | None = None) -> str:
    """Press Start in the Train tab (with `settings` typed first); return the run's name."""
    tr = show(jlab, ".sftlab-train")
    for cls, value in (settings or {}).items():
        set_number(tr, cls, value)
    jlab.wait_for(lambda: all(tr.locator(f"input.sftlab-{c}").input_value() == v
                              for c, v in (settings or {}).items()), "the settings to stay as typed", 10)
    watch_state(tr)
    button(tr, "Start").click()
    wait_state(jlab, tr, "done", "the training run", TRAIN_S)
    label = tr.locator(".sftlab-tuned-run")
    holds = r"the weights of (\S+)$"  # "tuned model: the weights of <run>"
    jlab.wait_for(lambda: re.search(holds, label.inner_text()),
                  "the Train tab to name the run the tuned model holds", 30)
    return re.search(holds, label.inner_text()).group(1)


def compare_typed(jlab, prompt: str, decoding: str = "sampled"):
    """Compare base and tuned on one typed prompt; return the Compare view's root."""
    cmp_ = show(jlab, ".sftlab-compare")
    source = cmp_.locator("select.sftlab-source")
    source.select_option("typed")
    prompts = cmp_.locator("textarea.sftlab-prompts")
    jlab.wait_for(lambda: prompts.is_visible(), "the typed-prompts box to show", 30)
    prompts.fill(prompt)
    prompts.press("Tab")
    cmp_.locator("select.sftlab-decoding").select_option(decoding)
    # the temperature box follows the decoding once Python has it
    sampled = decoding == "sampled"
    jlab.wait_for(lambda: cmp_.locator("input.sftlab-temperature").is_enabled() == sampled,
                  f"the temperature box to follow {decoding} decoding", 30)
    watch_state(cmp_)
    button(cmp_, "Compare").click()
    wait_state(jlab, cmp_, "done", "the comparison", COMPARE_S)
    return cmp_


def reply_text(cell) -> str:
    """A reply as a person reads it: the `.sftlab-reply` text without the diff's drop marks."""
    return cell.locator(".sftlab-reply").evaluate("""el => {
        const copy = el.cloneNode(true);
        copy.querySelectorAll('.sftlab-del-mark').forEach((m) => m.remove());
        return copy.textContent;
    }""")


def heads(cmp_) -> dict[str, str]:
    """Column name (data-column) -> its head text in the comparison table."""
    return dict(cmp_.locator("thead th[data-column]").evaluate_all(
        "els => els.map(e => [e.dataset.column, e.innerText.trim()])"))


def report_console(jlab):
    print(f"[{jlab.test_name}] {jlab.console_report()}")


# ----------------------------------------------------------------------------- 1. keyboard

def test_keys_stay_in_the_multiline_boxes(jlab, tmp_path):
    """Enter and Shift+Enter make new lines in every multi-line box of the lab; no key typed
    there re-runs the Lab's cell or edits the notebook; the Dataset's edits reach Python."""
    page = jlab.page
    open_lab(jlab, tmp_path)
    before = notebook_snapshot(jlab)
    if before["count"] is None or not before["prompt"]:
        jlab.fail(f"the Lab's cell should show its execution count after Run All: {before}")
    token = mark_lab(page)

    # -- Dataset: a new example with system text, instruction and response ----------------
    ds = show(jlab, ".sftlab-dataset")
    examples = ds.locator(".sftlab-example")
    n_before = examples.count()
    button(ds, "Add example").click()
    jlab.wait_for(lambda: examples.count() == n_before + 1, "a new empty example card", 30)
    button(examples.last, "Add system text").click()
    jlab.wait_for(lambda: examples.last.locator("textarea.sftlab-system").count() == 1,
                  "the new card's system text box", 30)
    card = examples.last
    boxes = {
        "the Dataset system text": (card.locator("textarea.sftlab-system"),
                                    ("You are a bored bard.", "Answer in rhyme, at most two lines.",
                                     "Sign as Bede.")),
        "the Dataset instruction": (card.locator("textarea.sftlab-turn.sftlab-user"),
                                    ("Add a box and a dad.", "Then delete the extra boxes.",
                                     "Explain it.")),
        "the Dataset response": (card.locator("textarea.sftlab-turn.sftlab-assistant"),
                                 ("A box, a dad, a bad idea.", "Boxes deleted, a dad stays.", "Bede.")),
    }
    for what, (box, lines) in boxes.items():
        type_three_lines(page, box, lines)
        check_box(jlab, box, lines, what, before, token)
    page.keyboard.press("Tab")  # leave the last box: the edit is committed on change

    # Python got the edit: the summary (computed in the kernel) and the autosave file
    n = n_before + 1
    jlab.wait_for(lambda: re.search(rf"\b{n} examples\b", ds.locator(".sftlab-summary").inner_text()),
                  f"the summary (computed in Python) to count {n} examples", 30)
    wants = {what: "\n".join(lines) for what, (_, lines) in boxes.items()}
    jlab.wait_for(lambda: all(w in autosaved_texts(jlab) for w in wants.values()),
                  f"the autosave file to hold the three multi-line texts {list(wants.values())}", 30)
    # the mask preview (tokenized in Python) of the new, selected example shows every line
    preview = ds.locator(".sftlab-preview")
    lines = [line for _, ls in boxes.values() for line in ls]
    jlab.wait_for(lambda: all(line in preview.inner_text() for line in lines),
                  f"the mask preview (made in Python) to show every typed line {lines}", 30)
    if card.locator(".sftlab-tokens").inner_text().strip() == "":
        jlab.fail("the new example has no token count: Python did not review it")
    card.evaluate("e => e.scrollIntoView({block: 'center'})")
    jlab.screenshot("keys_dataset.png")

    # -- Compare: prompts and references, typed ---------------------------------------------
    cmp_ = show(jlab, ".sftlab-compare")
    cmp_.locator("select.sftlab-source").select_option("typed")
    prompts_box = cmp_.locator("textarea.sftlab-prompts")
    refs_box = cmp_.locator("textarea.sftlab-references")
    jlab.wait_for(lambda: prompts_box.is_visible() and refs_box.is_visible(),
                  "the typed prompts and references boxes to show", 30)
    prompt_lines = ("What is a kettle for?", "Name a bird.", "Why is the sea salty?")
    ref_lines = ("Boiling water.", "A robin.", "Salt from rocks.")
    for what, box, lines in (("the Compare prompts", prompts_box, prompt_lines),
                             ("the Compare references", refs_box, ref_lines)):
        box.fill("")
        type_three_lines(page, box, lines)
        check_box(jlab, box, lines, what, before, token)

    # -- notebook command-mode shortcuts typed inside a box ----------------------------------
    # In command mode A/B insert a cell, D D deletes one, X cuts one, Escape/Enter switch modes.
    refs_box.press("End")
    for key in ("a", "b", "d", "d", "x", "Escape", "Enter"):
        page.keyboard.press(key)
    page.wait_for_timeout(500)  # a shortcut that got through acts at once; give it a moment
    value = refs_box.input_value()
    if value != "\n".join(ref_lines) + "abddx\n":
        jlab.fail(f"the shortcut keys should type 'abddx' then a new line in the references box "
                  f"(Escape does nothing there); it holds {value!r}")
    if not refs_box.evaluate("el => el === document.activeElement"):
        jlab.fail("Escape or Enter took the focus out of the references box")
    assert_notebook_untouched(jlab, before, token, "after a, b, d, d, x, Escape, Enter in a box")
    refs_box.fill("\n".join(ref_lines))
    refs_box.press("Tab")

    # the three prompt lines are three prompts: Compare makes three rows
    watch_state(cmp_)
    button(cmp_, "Compare").click()
    wait_state(jlab, cmp_, "done", "the comparison of the three typed prompts", COMPARE_S)
    shown = [t.strip() for t in cmp_.locator("td.sftlab-prompt-cell").evaluate_all(
        "els => els.map(e => e.childNodes[0] && e.childNodes[0].nodeType === 3"
        " ? e.childNodes[0].textContent : e.innerText)")]
    if shown != list(prompt_lines):
        jlab.fail(f"three prompt lines should make three rows {list(prompt_lines)}, "
                  f"the table shows {shown}")
    refs = cmp_.locator(".sftlab-reference").all_inner_texts()
    if refs and [r.removeprefix("Reference: ").strip() for r in refs] != list(ref_lines):
        jlab.fail(f"each row should show its own reference line {list(ref_lines)}; shows {refs}")
    cmp_ = show(jlab, ".sftlab-compare")
    cmp_.evaluate("e => e.scrollIntoView({block: 'start'})")
    jlab.screenshot("keys_compare.png")
    assert_notebook_untouched(jlab, before, token, "after comparing")

    # -- one-line boxes: Shift+Enter and the shortcut letters stay in them too ------------------
    # (the Train tab's settings and the experiment name are <input>s of anywidgets)
    keys = ("Shift+Enter", "a", "b", "d", "d", "x", "Escape", "Enter", "Shift+Enter")
    one_line = (("the Train tab's Max steps", ".sftlab-train", "input.sftlab-max-steps"),
                ("the Experiments tab's name", ".sftlab-experiments", ".sftlab-exp-name input"))
    for what, root_sel, box_sel in one_line:
        box = show(jlab, root_sel).locator(box_sel)
        box.click()
        for key in keys:
            page.keyboard.press(key)
        page.wait_for_timeout(500)
        assert_notebook_untouched(jlab, before, token, f"after {', '.join(keys)} in {what}")
    if box.input_value() != "abddx":
        jlab.fail(f"the experiment name box should hold the typed 'abddx', holds {box.input_value()!r}")
    box.fill("")
    assert_clean(jlab, "after typing in every box")
    report_console(jlab)


# ----------------------------------------------------------------------------- 2. one job

def test_one_job_at_a_time_across_tabs(jlab, tmp_path):
    """While the experiments queue trains, the Train and Compare tabs say so in one line and
    refuse to start; after Stop the lines go and both can start again."""
    page = jlab.page
    open_lab(jlab, tmp_path)
    # Experiments run on the Train tab's settings: enough steps that the queue is still
    # training while the other tabs are looked at.
    tr = show(jlab, ".sftlab-train")
    set_number(tr, "max-steps", "400")
    jlab.wait_for(lambda: "400 steps" in tr.locator(".sftlab-estimate").inner_text(),
                  "the estimate to follow the new max steps (400 steps)", 30)

    ex = show(jlab, ".sftlab-experiments")
    # the queue says which settings it trains with: the Train tab's
    settings = ex.locator(".sftlab-exp-settings")
    jlab.wait_for(lambda: "Max steps 400" in settings.inner_text(),
                  "the Experiments tab to show the Train tab's settings (Max steps 400)", 30)
    ex.locator(".sftlab-exp-kind select").select_option(label="Data as it is (baseline)")
    ex.locator("button.sftlab-exp-add").click()
    message = ex.locator(".sftlab-exp-message")
    jlab.wait_for(lambda: "Queued 1 run" in message.inner_text(), "the baseline run to be queued", 30)
    ex.locator("button.sftlab-exp-run").click()
    stop = ex.locator("button.sftlab-exp-stop")
    jlab.wait_for(lambda: stop.is_enabled(), "the queue to run (its Stop enabled)", 60)
    status = ex.locator(".sftlab-exp-status")
    jlab.wait_for(lambda: re.search(r"running", status.inner_text()),
                  "the status table to show the run as running", QUEUE_S)
    if ex.locator(".sftlab-exp-busy").inner_text().strip():
        jlab.fail(f"the Experiments tab shows its own queue as another job: "
                  f"{ex.locator('.sftlab-exp-busy').inner_text()!r}")
    assert_fits(jlab, ex, "while the queue runs")
    jlab.screenshot("busy_experiments.png")

    # -- the Train tab: busy line naming the queue, Start refused ----------------------------
    tr = show(jlab, ".sftlab-train")
    busy = tr.locator(".sftlab-busy")
    jlab.wait_for(lambda: busy.is_visible() and "experiments queue" in busy.inner_text(),
                  "the Train tab's busy line to name the experiments queue", 30)
    line = busy.inner_text().strip()
    seen_at = page.evaluate("performance.now()")
    if "\n" in line:
        jlab.fail(f"the busy line should be one line, is {line!r}")
    for name in ("Start", "Reset to base", "Load model", "Load as tuned"):
        if button(tr, name).is_enabled():
            jlab.fail(f"'{name}' in the Train tab is enabled while the experiments queue trains "
                      f"(busy line: {line!r})")
    if not tr.locator("button.sftlab-stop").is_disabled():
        jlab.fail("the Train tab's Stop is enabled while its panel runs nothing")
    state = tr.get_attribute("data-state")
    busy.scroll_into_view_if_needed()
    jlab.screenshot("busy_train.png")
    if state not in ("idle", "done"):
        jlab.fail(f"the Train tab's own state should stay idle while another job runs, is {state!r}")

    # -- the Compare tab likewise ---------------------------------------------------------
    cmp_ = show(jlab, ".sftlab-compare")
    cbusy = cmp_.locator(".sftlab-busy")
    jlab.wait_for(lambda: cbusy.is_visible() and "experiments queue" in cbusy.inner_text(),
                  "the Compare tab's busy line to name the experiments queue", 30)
    if button(cmp_, "Compare").is_enabled():
        jlab.fail(f"Compare is enabled while the experiments queue trains "
                  f"(busy line: {cbusy.inner_text()!r})")
    cbusy.scroll_into_view_if_needed()
    jlab.screenshot("busy_compare.png")

    # the queue trains on meanwhile; what the busy line says then is printed for the report
    def step():
        m = re.search(r"(\d+)/400", status.text_content())
        return int(m.group(1)) if m else 0
    first = step()
    jlab.wait_for(lambda: step() >= first + 8, f"the queue to train on (at step {first})", 120)
    later = tr.locator(".sftlab-busy").text_content().strip()
    waited = (page.evaluate("performance.now()") - seen_at) / 1000
    print(f"busy line at first: {line!r}\nbusy line {waited:.0f} s later: {later!r}\n"
          f"experiments status then: {status.text_content()!r}")

    # -- Stop the queue: the lines go, both tabs can start again ------------------------------
    ex = show(jlab, ".sftlab-experiments")
    stop.click()
    jlab.wait_for(lambda: "Queue finished" in message.inner_text(),
                  "the queue to finish after Stop", QUEUE_S)
    table = status.inner_text()
    if not re.search(r"stopped", table):
        jlab.fail(f"the stopped run should be listed as stopped; the status table shows:\n{table}")
    if re.search(r"\bnan\b", table, re.IGNORECASE):
        jlab.fail(f"the status table shows a NaN loss after Stop:\n{table}")
    if not stop.is_disabled():
        jlab.fail("the queue's Stop is still enabled after the queue finished")
    jlab.screenshot("busy_stopped.png")
    ex.locator(".sftlab-exp-nll").evaluate("e => e.scrollIntoView({block: 'center'})")
    jlab.wait_for(lambda: ex.locator(".sftlab-exp-nll tr[data-run]").count() == 1,
                  "the held-out NLL table to list the stopped run", 30)
    assert_fits(jlab, ex, "after the queue stopped")
    jlab.screenshot("busy_stopped_tables.png")
    tr = show(jlab, ".sftlab-train")
    jlab.wait_for(lambda: not tr.locator(".sftlab-busy").is_visible()
                  and button(tr, "Start").is_enabled(),
                  "the Train tab's busy line to go and Start to be enabled", 30)
    cmp_ = show(jlab, ".sftlab-compare")
    jlab.wait_for(lambda: not cmp_.locator(".sftlab-busy").is_visible()
                  and button(cmp_, "Compare").is_enabled(),
                  "the Compare tab's busy line to go and Compare to be enabled", 30)
    assert_clean(jlab, "after the queue stopped")
    report_console(jlab)


# ----------------------------------------------------------------------------- 3. history

def test_history_after_kernel_restart(jlab, tmp_path):
    """Train, compare, restart the kernel, run the cells again: the lab shows the starter, the
    last run (summary, curve, stored runs), the earlier run's replies, and loads the run."""
    page = jlab.page
    open_lab(jlab, tmp_path)
    run = train(jlab, TRAIN_SETTINGS)
    cmp_ = compare_typed(jlab, PROMPT)
    tuned_before = reply_text(cmp_.locator("td.sftlab-cell[data-column=tuned]").first)
    base_before = reply_text(cmp_.locator("td.sftlab-cell[data-column=base]").first)
    if not tuned_before.strip():
        jlab.fail("the tuned model's sampled reply is empty; the test needs words to find again")
    cmp_.locator(".sftlab-replies-table").scroll_into_view_if_needed()
    jlab.screenshot("restart_before.png")

    jlab.restart_kernel()
    jlab.run_all(timeout_s=RUN_ALL_S)
    assert_clean(jlab, "after the restart and Run All")
    counts = [c["count"] for c in jlab.cell_states() if c["type"] == "code" and not c["empty"]]
    if counts[0] != 1:
        jlab.fail(f"after the restart the first code cell should run as [1]; counts {counts}: "
                  "no restart?")

    # -- Dataset: the same starter in the dropdown, and its notes ------------------------------
    ds = show(jlab, ".sftlab-dataset")
    select = ds.locator("select.sftlab-starter-select")
    jlab.wait_for(lambda: select.input_value() == "persona",
                  f"the starter dropdown to show 'persona' (shows {select.input_value()!r})", 30)
    notes = ds.locator("details.sftlab-starter-notes")
    if not notes.is_visible() or "persona" not in notes.locator("summary").inner_text():
        jlab.fail(f"the starter notes should show for 'persona'; visible {notes.is_visible()}, "
                  f"summary {notes.locator('summary').inner_text()!r}")
    notes.locator("summary").click()
    if len(notes.inner_text().strip()) < 40:
        jlab.fail(f"the starter notes are (almost) empty: {notes.inner_text()!r}")
    notes.scroll_into_view_if_needed()
    jlab.screenshot("restart_dataset.png")

    # -- Train: the last run's summary, its curve, the stored runs -------------------------
    tr = show(jlab, ".sftlab-train")
    msg = tr.locator(".sftlab-message")
    jlab.wait_for(lambda: msg.inner_text().startswith("Last run in runs"),
                  "the Train tab's message to say 'Last run in runs…'", 30)
    if run not in msg.inner_text():
        jlab.fail(f"the last-run message should name the run {run}: {msg.inner_text()!r}")
    points = tr.locator(".sftlab-loss-chart .scatterlayer .trace .points path")
    tr.locator(".sftlab-loss-chart").scroll_into_view_if_needed()
    jlab.wait_for(lambda: points.count() > 0, "the restored loss chart to show points", 30)
    options = tr.locator("select.sftlab-run-select option").all_inner_texts()
    if not any(run in o for o in options):
        jlab.fail(f"the stored runs should list {run}; they list {options}")
    if button(tr, "Load as tuned").is_disabled():
        jlab.fail(f"'Load as tuned' is disabled with {run} stored (options {options})")
    jlab.screenshot("restart_train.png")

    # -- Compare: the earlier run's column, with its recorded reply ---------------------------
    cmp_ = compare_typed(jlab, PROMPT)
    cols = heads(cmp_)
    if run not in cols:
        jlab.fail(f"the comparison should have a column for the earlier run {run}; heads: {cols}")
    earlier = reply_text(cmp_.locator(f'td.sftlab-cell[data-column="{run}"]').first)
    if earlier.strip() != tuned_before.strip():
        jlab.fail(f"the earlier run's column should show its recorded reply {tuned_before!r}, "
                  f"shows {earlier!r}")
    base_after = reply_text(cmp_.locator("td.sftlab-cell[data-column=base]").first)
    if base_after != base_before:
        jlab.fail(f"the base model's sampled reply changed across the restart: "
                  f"{base_before!r} -> {base_after!r}")
    cmp_.locator(".sftlab-replies-table").scroll_into_view_if_needed()
    jlab.screenshot("restart_compare.png")

    # -- Load as tuned: the tuned column is the run again --------------------------------------
    tr = show(jlab, ".sftlab-train")
    run_select = tr.locator("select.sftlab-run-select")
    path = run_select.locator("option", has_text=run).first.get_attribute("value")
    run_select.select_option(path)
    button(tr, "Load as tuned").click()
    label = tr.locator(".sftlab-tuned-run")
    jlab.wait_for(lambda: label.inner_text().strip() == f"tuned model: the weights of {run}",
                  f"the Train tab to say the tuned model is run {run}", 120)
    if not tr.locator(".sftlab-message").inner_text().startswith(f"Loaded run {run}"):
        jlab.fail(f"the message should say the run was loaded: "
                  f"{tr.locator('.sftlab-message').inner_text()!r}")
    if widget_errors(page):
        jlab.fail(f"loading the run shows an error: {widget_errors(page)}")
    cmp_ = compare_typed(jlab, PROMPT)
    cols = heads(cmp_)
    if run not in cols.get("tuned", ""):
        jlab.fail(f"the tuned column's head should name the loaded run {run}; heads: {cols}")
    if run in cols:
        jlab.fail(f"the loaded run should not also show as an earlier run; heads: {cols}")
    tuned_after = reply_text(cmp_.locator("td.sftlab-cell[data-column=tuned]").first)
    if tuned_after.strip() != tuned_before.strip():
        jlab.fail(f"the loaded run should reply as it did before the restart (same seed): "
                  f"{tuned_before!r}, now {tuned_after!r}")
    cmp_.locator(".sftlab-replies-table").scroll_into_view_if_needed()
    jlab.screenshot("restart_loaded.png")
    assert_clean(jlab, "after loading the run")
    report_console(jlab)


# ----------------------------------------------------------------------------- 4. word diff

def test_word_diff_is_readable(jlab, tmp_path):
    """A tuned reply reads as the tuned model wrote it: added words in <ins> (a word that
    replaced base words says which on hover), base words only dropped as small marks (shown in
    full in a details note), never as <del> text inline."""
    page = jlab.page
    open_lab(jlab, tmp_path)
    train(jlab, TRAIN_SETTINGS)
    cmp_ = compare_typed(jlab, PROMPT)

    tuned = cmp_.locator("td.sftlab-cell[data-column=tuned]").first
    base = reply_text(cmp_.locator("td.sftlab-cell[data-column=base]").first)
    body = tuned.locator(".sftlab-reply")
    replaced = body.locator("ins[title^='in place of: ']").count()
    if body.locator("ins").count() == 0 or body.locator(".sftlab-del-mark").count() + replaced == 0:
        jlab.fail(f"the test needs a tuned reply that adds and drops words; base {base!r}, tuned "
                  f"cell {tuned.inner_html()[:500]!r}")
    if body.locator("del").count():
        jlab.fail(f"the tuned reply shows deleted words inline: {body.inner_html()[:500]!r}")

    # Read the reply body in order: text (kept), <ins> (added; what it replaced in its title),
    # marks (only dropped, in the title).
    pieces = body.evaluate("""el => [...el.childNodes].map((n) =>
        n.nodeType === 3 ? ['equal', n.textContent]
        : n.tagName === 'INS' ? ['insert', n.textContent, n.title]
        : n.classList.contains('sftlab-del-mark')
            ? ['delete', n.title.replace(/^the base reply had here: /, ''), n.textContent]
        : ['other', n.outerHTML])""")
    others = [p for p in pieces if p[0] == "other"]
    if others:
        jlab.fail(f"unexpected elements in the reply body: {others}")
    words = lambda s: s.split()  # noqa: E731
    # the base reply again: kept text, what each added word replaced (once, where two added
    # runs sit around one replaced run), and the marks' dropped words
    taken, last = [], None
    for p in pieces:
        if p[0] == "insert":
            gone = p[2][len("in place of: "):] if p[2].startswith("in place of: ") else None
            if gone is not None and gone != last:
                taken.append(("delete", gone))
            last = gone
        else:
            taken.append((p[0], p[1]))
            last = None
    kept_and_dropped = "".join(t + " " if op == "delete" else t for op, t in taken)
    if words(kept_and_dropped) != words(base):
        jlab.fail(f"the kept words and the marks' dropped words should give back the base reply "
                  f"{base!r}; they give {kept_and_dropped!r} ({pieces})")
    marks = body.locator(".sftlab-del-mark")
    for i in range(marks.count()):
        mark = marks.nth(i)
        if len(mark.inner_text().strip()) > 2:
            jlab.fail(f"a drop mark should be a small sign, not words: {mark.inner_text()!r}")
        size = mark.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        text_size = body.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        box = mark.bounding_box()
        if size > text_size or (box and box["width"] > 24):
            jlab.fail(f"a drop mark should be small: font {size}px (text {text_size}px), box {box}")

    # the note: counts, and the dropped words in full
    note = tuned.locator("details.sftlab-diff-note")
    if note.count() != 1:
        jlab.fail(f"the tuned cell should have one details note of the diff; has {note.count()}")
    summary = note.locator("summary").inner_text()
    added = sum(len(words(p[1])) for p in pieces if p[0] == "insert")
    dropped = [t for op, t in taken if op == "delete"]
    n_dropped = sum(len(words(d)) for d in dropped)
    want = f"{added} word{'s' if added != 1 else ''} added, {n_dropped} dropped from the base reply"
    if summary.strip() != want:
        jlab.fail(f"the diff note should say {want!r}, says {summary!r}")
    note.locator("summary").click()
    in_note = note.locator("del").all_inner_texts()
    if [t.strip() for t in in_note] != [d.strip() for d in dropped]:
        jlab.fail(f"the note should list the dropped words {dropped}, lists {in_note}")
    tuned.scroll_into_view_if_needed()
    jlab.screenshot("word_diff.png")
    cmp_.locator(".sftlab-replies-table").screenshot(path=str(ARTIFACTS / "word_diff_table.png"))

    # Word diff off: the reply as plain text, the same words
    reads = reply_text(tuned)
    cmp_.locator("input.sftlab-show-diff").uncheck()
    jlab.wait_for(lambda: tuned.locator(".sftlab-reply").count() == 1
                  and tuned.locator(".sftlab-reply ins, .sftlab-del-mark").count() == 0,
                  "the tuned reply to show without marks once the word diff is off", 30)
    plain = reply_text(cmp_.locator("td.sftlab-cell[data-column=tuned]").first)
    if words(plain) != words(reads):
        jlab.fail(f"with the diff off the tuned reply should read the same: {reads!r} vs {plain!r}")
    assert_clean(jlab, "after the word diff")
    report_console(jlab)


def test_which_examples_lists_supporting_and_opposing(jlab, tmp_path):
    """'Which examples?' under a tuned reply ranks the run's training examples and shows the
    supporting and opposing lists under that row, with the note on what the score is."""
    open_lab(jlab, tmp_path)
    train(jlab, TRAIN_SETTINGS)
    cmp_ = compare_typed(jlab, PROMPT)
    which = cmp_.locator("td.sftlab-cell[data-column=tuned] .sftlab-influence-button")
    jlab.wait_for(lambda: which.count() == 1 and which.is_enabled(),
                  "a 'Which examples?' button under the tuned reply", 60)
    which.click()
    panel = cmp_.locator(".sftlab-influence-row")
    entries = panel.locator(".sftlab-influence-entry")
    jlab.wait_for(lambda: entries.count() > 0, "the supporting and opposing examples", COMPARE_S)
    text = panel.inner_text()
    if "Supporting" not in text or "Opposing" not in text or "estimate" not in text:
        jlab.fail(f"the panel should name both lists and say the score is an estimate: {text!r}")
    first = entries.first.inner_text()
    if not re.match(r"\+\d\.\d\d #\d+ ", first):
        jlab.fail(f"the top supporting example should show its score and index first: {first!r}")
    panel.evaluate("e => e.scrollIntoView({block: 'center'})")
    jlab.screenshot("influence.png")
    assert_clean(jlab, "after 'Which examples?'")
