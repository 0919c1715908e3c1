"""A small driver for one JupyterLab page (Playwright, sync API): open a notebook, run it,
read its outputs, take screenshots.

Every wait is explicit and fails with a message that names what was awaited, the screenshot
taken at that moment, the page's console errors and the end of the server log.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

# Outputs and texts that mean something went wrong.
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
WIDGET_BROKEN_TEXTS = ("Error displaying widget", "Loading widget...", "Failed to load model class")


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class JupyterLab:
    """Drive one JupyterLab page: open a notebook, run it, read its outputs.

    Every wait is explicit and fails with a message that names what was awaited, the
    screenshot taken at that moment and the console errors seen so far.
    """

    def __init__(self, page, server, test_name: str):
        """`server`: the conftest's JupyterServer (url, token, root, log)."""
        self.page, self.server, self.test_name = page, server, safe_name(test_name)
        self.notebook: str | None = None
        self.reported = False

    # ---- reporting
    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / (name if name.endswith(".png") else f"{name}.png")
        try:
            self.page.screenshot(path=str(path), full_page=False)
        except Exception as e:  # noqa: BLE001 - the page may be gone; the report says so
            return Path(f"{path} (not saved: {e})")
        return path

    def console_report(self) -> str:
        errs = getattr(self.page, "console_errors", [])
        if not errs:
            return "page console errors: none"
        return "page console errors:\n  " + "\n  ".join(e[:500] for e in errs[-20:])

    def fail(self, message: str):
        self.reported = True  # the report hook need not add its own screenshot
        shot = self.screenshot(f"FAILED-{self.test_name}")
        pytest.fail(f"{message}\nscreenshot: {shot}\n{self.console_report()}\n"
                    f"server log tail ({self.server.log}):\n{self.server.log_tail(10)}",
                    pytrace=False)

    def wait_for(self, predicate, what: str, timeout_s: float, interval_s: float = 0.5):
        """Poll `predicate()` until truthy; fail with `what` after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except Exception as e:  # noqa: BLE001 - keep polling, report the last error
                last = e
            if last and not isinstance(last, Exception):
                return last
            self.page.wait_for_timeout(interval_s * 1000)
        self.fail(f"timed out after {timeout_s:.0f} s waiting for {what} (last value: {last!r})")

    # ---- notebook
    def open_notebook(self, name: str, source: Path | None = None, timeout_s: float = 120):
        """Copy a clean notebook into the server root, open it, wait for an idle kernel."""
        self.server.fresh_notebook(name, source)
        self.notebook = name
        self.page.goto(self.server.lab_url(name), wait_until="domcontentloaded")
        self.wait_for(lambda: self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").count(),
                      f"notebook {name} to show its cells", timeout_s)
        self.wait_kernel_idle(timeout_s)

    def kernel_status(self) -> str | None:
        """The open notebook's kernel status ('idle', 'busy', 'starting', ...) from the app."""
        return self.page.evaluate("""(path) => {
            const app = window.jupyterapp;
            if (!app) return null;
            for (const w of app.shell.widgets('main')) {
                if (w.context && w.context.path === path && w.sessionContext) {
                    const k = w.sessionContext.session && w.sessionContext.session.kernel;
                    return k ? k.status : null;
                }
            }
            return null;
        }""", self.notebook)

    def wait_kernel_idle(self, timeout_s: float = 120, settle_s: float = 1.0):
        """Kernel idle, and still idle `settle_s` later (queued cells start in between)."""
        def idle_twice():
            if self.kernel_status() != "idle":
                return False
            self.page.wait_for_timeout(settle_s * 1000)
            return self.kernel_status() == "idle"
        self.wait_for(idle_twice, "the kernel to be idle", timeout_s)

    def click_menu(self, menu: str, item: str):
        """Click a main-menu entry by its text, e.g. ("Run", "Run All Cells")."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{re.escape(menu)}$")).click()
        entry = self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$"))
        entry.first.wait_for(state="visible")
        entry.first.click()

    def cell_states(self) -> list[dict]:
        """Per cell: type and execution count from the notebook model (not the DOM, so cells
        scrolled out of view count too)."""
        return self.page.evaluate("""(path) => {
            for (const w of window.jupyterapp.shell.widgets('main')) {
                if (w.context && w.context.path === path && w.content && w.content.model) {
                    const out = [];
                    for (const c of w.content.model.cells) {
                        out.push({type: c.type, count: c.type === 'code' ? c.executionCount : null,
                                  empty: c.sharedModel.getSource().trim() === ''});
                    }
                    return out;
                }
            }
            return null;
        }""", self.notebook)

    def run_all(self, timeout_s: float = 300):
        """Run > Run All Cells, then wait until the kernel is idle and every non-empty code
        cell has an execution count."""
        self.page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.click_menu("Run", "Run All Cells")
        started = time.monotonic()

        def all_executed():
            if self.kernel_status() == "idle" and self.error_outputs():
                self.assert_clean("Run All stopped at an error")  # fail now, not at timeout
            cells = self.cell_states() or []
            code = [c for c in cells if c["type"] == "code" and not c["empty"]]
            return bool(code) and all(c["count"] is not None for c in code) \
                and self.kernel_status() == "idle"
        self.wait_for(all_executed, "every code cell to have an execution count and the kernel "
                      "to be idle", timeout_s)
        self.wait_kernel_idle(timeout_s - (time.monotonic() - started))
        missing = [i for i, c in enumerate(self.cell_states())
                   if c["type"] == "code" and not c["empty"] and c["count"] is None]
        if missing:
            self.fail(f"code cells {missing} have no execution count after Run All")

    def cell_count(self) -> int:
        """How many cells the open notebook has (from its model)."""
        return len(self.cell_states() or [])

    def cell_holding(self, selector: str) -> dict | None:
        """The cell whose output holds `selector`: {index, count, prompt}, where `count` is
        its execution count in the notebook model and `prompt` the `[n]:` text it shows."""
        return self.page.evaluate("""([path, sel]) => {
            for (const w of window.jupyterapp.shell.widgets('main')) {
                if (w.context && w.context.path === path && w.content && w.content.model) {
                    const el = w.content.node.querySelector(sel);
                    if (!el) return null;
                    const i = w.content.widgets.findIndex((c) => c.node.contains(el));
                    if (i < 0) return null;
                    const cell = w.content.widgets[i];
                    const prompt = cell.node.querySelector('.jp-InputPrompt');
                    return {index: i, count: cell.model.executionCount,
                            prompt: prompt ? prompt.textContent.trim() : null};
                }
            }
            return null;
        }""", [self.notebook, selector])

    def restart_kernel(self, timeout_s: float = 120):
        """Kernel > Restart Kernel…, confirm the dialog, wait until the restarted kernel is
        idle. Cells keep their outputs and counts; run them again to rebuild their state."""
        hooked = self.page.evaluate("""(path) => {
            for (const w of window.jupyterapp.shell.widgets('main')) {
                if (w.context && w.context.path === path && w.sessionContext) {
                    window.__sftlabKernelStatuses = [];
                    if (!window.__sftlabKernelHook) {
                        window.__sftlabKernelHook = true;
                        w.sessionContext.statusChanged.connect(
                            (_, status) => window.__sftlabKernelStatuses.push(status));
                    }
                    return true;
                }
            }
            return false;
        }""", self.notebook)
        if not hooked:
            self.fail(f"no session for {self.notebook} to restart")
        self.click_menu("Kernel", "Restart Kernel…")
        accept = self.page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        accept.wait_for(state="visible")
        accept.click()
        self.wait_for(lambda: "restarting" in self.page.evaluate("window.__sftlabKernelStatuses"),
                      "the kernel to report 'restarting'", 60)
        self.wait_kernel_idle(timeout_s)

    # ---- checks
    def error_outputs(self) -> list[str]:
        """Texts of error outputs and of stderr outputs that hold a traceback."""
        texts = [t.strip()[:2000] for t in self.page.locator(ERROR_OUTPUT).all_inner_texts()]
        texts += [t.strip()[:2000] for t in self.page.locator(STDERR_OUTPUT).all_inner_texts()
                  if "Traceback" in t]
        return texts

    def broken_widgets(self) -> list[str]:
        found = []
        for text in WIDGET_BROKEN_TEXTS:
            loc = self.page.get_by_text(text, exact=False)
            found += [t.strip()[:500] for t in loc.all_inner_texts()]
        return found

    def assert_clean(self, stage: str):
        """No error output, no traceback on stderr, no widget that failed to render."""
        errors = self.error_outputs()
        if errors:
            self.fail(f"{stage}: {len(errors)} error output(s) in the notebook:\n"
                      + "\n---\n".join(errors))
        broken = self.broken_widgets()
        if broken:
            self.fail(f"{stage}: widget(s) did not render:\n" + "\n".join(broken))
