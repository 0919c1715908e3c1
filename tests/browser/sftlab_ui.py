"""Helpers for driving the lab's widgets in a page, shared by the browser tests.

`show` brings a widget root (`.sftlab-dataset`, `.sftlab-train`, ...) into view, clicking its
tab in `Lab()` if needed; `button` finds a button by its text; `watch_state` + `wait_state`
wait for an action's own run of a widget (its `data-state`); `assert_clean` fails on error
outputs, broken widgets and error lines inside the lab's widgets; `assert_fits` on a widget
wider than its place in the page.
"""
from __future__ import annotations

import re

# widget root class -> a word of its tab's title in Lab()
TAB_TITLES = {".sftlab-dataset": "Dataset", ".sftlab-train": "Train",
              ".sftlab-compare": "Compare", ".sftlab-experiments": "Experiments"}


def show(jlab, root_sel: str):
    """The widget root `root_sel`, made visible: if it sits in a tab that is not selected,
    click its tab (by title, else each tab in turn) until it shows."""
    page = jlab.page
    root = page.locator(root_sel).last
    jlab.wait_for(lambda: page.locator(root_sel).count() > 0, f"{root_sel} to be in the page", 60)
    if not root.is_visible():
        tabs = page.locator(".jp-OutputArea-output .lm-TabBar-tab")
        titled = tabs.filter(has_text=re.compile(TAB_TITLES.get(root_sel, "^$"), re.IGNORECASE))
        for tab in [titled.last] * bool(titled.count()) + [tabs.nth(i) for i in range(tabs.count())]:
            tab.click()
            if root.is_visible():
                break
        else:
            jlab.fail(f"{root_sel} is in the page but never became visible, even after clicking "
                      f"each of the {tabs.count()} tab(s)")
    root.scroll_into_view_if_needed()
    return root


def button(root, text: str):
    return root.get_by_role("button", name=re.compile(rf"^\s*{re.escape(text)}\s*$", re.IGNORECASE))


def shown_text(root) -> str:
    """What a person sees in `root`: its text plus the values of its fields."""
    values = root.locator("textarea, input").evaluate_all("els => els.map(e => e.value)")
    return root.inner_text() + "\n" + "\n".join(values)


def widget_errors(page) -> list[str]:
    """Errors the lab's widgets show in their own error line (`.sftlab-error`)."""
    return [t.strip() for t in page.locator(".sftlab-error:not([hidden])").all_inner_texts()
            if t.strip()]


def assert_clean(jlab, stage: str):
    """No error output in the notebook, no broken widget, no error line in a lab widget."""
    jlab.assert_clean(stage)
    errors = widget_errors(jlab.page)
    if errors:
        jlab.fail(f"{stage}: a widget shows an error:\n" + "\n".join(errors))


def watch_state(root):
    """Record every value the widget's `data-state` takes from now on (before a click), so a
    later wait sees this action's run and not the 'done' of a run the notebook made."""
    root.evaluate("""el => {
        el.__sftlabStates = [];
        if (el.__sftlabObserver) el.__sftlabObserver.disconnect();
        el.__sftlabObserver = new MutationObserver(() => el.__sftlabStates.push(el.dataset.state));
        el.__sftlabObserver.observe(el, {attributes: true, attributeFilter: ["data-state"]});
    }""")


def wait_state(jlab, root, want: str, what: str, timeout_s: float):
    """After `watch_state`: wait until the widget went through another state and is now
    `want`; fail at once on 'error'."""
    def reached():
        # one evaluate, so the state and the history are read at the same moment
        now = root.evaluate("el => ({state: el.dataset.state, seen: el.__sftlabStates || []})")
        if now["state"] == "error":
            jlab.fail(f"{what} failed: {' | '.join(widget_errors(jlab.page)) or '(no message)'}")
        return now["state"] == want and any(s != want for s in now["seen"])
    jlab.wait_for(reached, f"{what} (data-state to pass a busy state and reach {want!r}; "
                  f"now {root.get_attribute('data-state')!r})", timeout_s)


def assert_fits(jlab, root, stage: str):
    """Nothing in the widget `root` is wider than its place (`Lab()`'s tab, else its output):
    no sideways scroll, no button or table cut off at the right edge."""
    wide = root.evaluate("""el => {
        const frame = el.closest(".sftlab-app") || el.closest(".jp-OutputArea-output") || el.parentElement;
        const right = Math.min(el.getBoundingClientRect().right, frame.getBoundingClientRect().right) + 1;
        const out = [];
        for (let a = el; a && a !== frame.parentElement; a = a.parentElement) {
            if (a.scrollWidth > a.clientWidth + 1) out.push(`${a.className} scrolls sideways: ${a.scrollWidth} > ${a.clientWidth} px`);
        }
        for (const e of el.querySelectorAll("button, table, select, input, .sftlab-toolbar")) {
            const box = e.getBoundingClientRect();
            if (box.width && box.right > right) out.push(`${e.tagName.toLowerCase()}.${e.className}: right edge ${Math.round(box.right)} > ${Math.round(right)}`);
        }
        return out;
    }""")
    if wide:
        jlab.fail(f"{stage}: the widget is wider than its place in the page:\n" + "\n".join(wide))
