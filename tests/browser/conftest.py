"""Fixtures for the browser tests: a private JupyterLab server and headless Chromium.

`jupyter_server` (session): JupyterLab on 127.0.0.1, a free port, a random token, serving a
temporary copy of `notebooks/`, with its config/data/runtime dirs in tmp (the user's settings
never leak in), announcements off, `SFT_LAB_FAST=1` so notebooks use the tiny random model.

`browser` (session): Chromium from the system (Debian's `chromium`), driven by Playwright.
Playwright's own browser download is never used. Without `chromium` on PATH the browser tests
are skipped with the reason.

`jlab` (per test): a fresh page wrapped in `JupyterLab`, a small driver with explicit waits
whose failures carry a screenshot path and the page's console errors.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "tests" / "artifacts"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}

# Generous: a 2-core CPU machine, JupyterLab's first load takes 10-20 s.
SERVER_START_S = 120
DEFAULT_TIMEOUT_MS = 60_000

# Outputs and texts that mean something went wrong.
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
WIDGET_BROKEN_TEXTS = ("Error displaying widget", "Loading widget...", "Failed to load model class")


# --------------------------------------------------------------------------- server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """A running JupyterLab: its URL, token, root dir (a tmp copy of notebooks/) and log."""

    def __init__(self, proc, url: str, token: str, root: Path, log: Path):
        self.proc, self.url, self.token, self.root, self.log = proc, url, token, root, log

    def api(self, method: str, path: str, timeout: float = 30):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def lab_url(self, notebook: str) -> str:
        # `reset` starts from an empty workspace so a previous test's layout is not restored.
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"

    def fresh_notebook(self, name: str, source: Path | None = None) -> Path:
        """Put a pristine copy of `source` (default: the committed notebook) at root/name,
        outputs and execution counts stripped, so every test starts from a clean notebook."""
        source = source or NOTEBOOKS / name
        if not source.is_file():
            pytest.fail(f"notebook {source} does not exist", pytrace=False)
        nb = json.loads(source.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
        nb.get("metadata", {}).pop("widgets", None)  # saved widget state would show stale views
        dest = self.root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(nb, indent=1), encoding="utf-8")
        return dest

    def reset_root(self) -> None:
        """Make the root a fresh copy of notebooks/ again: files a previous test's kernel
        wrote there (autosaved datasets, runs/) must not leak into the next test."""
        for child in self.root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        if NOTEBOOKS.is_dir():
            shutil.copytree(NOTEBOOKS, self.root, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints"))

    def shutdown_kernels(self) -> None:
        """End every session and kernel, so the next test starts on an idle machine."""
        try:
            for s in self.api("GET", "/api/sessions"):
                self.api("DELETE", f"/api/sessions/{s['id']}")
            for k in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{k['id']}")
        except (urllib.error.URLError, OSError):
            pass

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = [ln[:300] for ln in self.log.read_text(errors="replace").splitlines()
                     if "Skipped non-installed server" not in ln]
            return "\n".join(lines[-n:])
        except OSError:
            return "(no server log)"


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jupyter")
    root = tmp / "notebooks"  # filled with a copy of notebooks/ before each test (reset_root)
    root.mkdir()
    config_dir, data_dir, runtime_dir = tmp / "config", tmp / "data", tmp / "runtime"
    for d in (config_dir, data_dir, runtime_dir, tmp / "ipython"):
        d.mkdir()
    # Disable the "news / announcements" plugin (its toast covers the notebook).
    (config_dir / "labconfig").mkdir()
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / "jupyter-server.log"
    port, token = _free_port(), secrets.token_hex(24)
    env = dict(os.environ,
               SFT_LAB_FAST="1",
               JUPYTER_CONFIG_DIR=str(config_dir),
               JUPYTER_DATA_DIR=str(data_dir),
               JUPYTER_RUNTIME_DIR=str(runtime_dir),
               JUPYTERLAB_SETTINGS_DIR=str(config_dir / "lab" / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(config_dir / "lab" / "workspaces"),
               IPYTHONDIR=str(tmp / "ipython"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_TOKEN", None)
    cmd = [sys.executable, "-m", "jupyter", "lab",
           "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, for kernel status
           "--LabApp.extension_manager=readonly",  # no PyPI queries from the server
           "--ServerApp.open_browser=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root
    logf = open(log, "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    server = JupyterServer(proc, url, token, root, log)
    deadline = time.monotonic() + SERVER_START_S
    while True:
        if proc.poll() is not None:
            logf.close()
            pytest.fail(f"JupyterLab exited with code {proc.returncode} before answering; "
                        f"log {log}:\n{server.log_tail()}")
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5).read()
            break
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                _stop(proc)
                logf.close()
                pytest.fail(f"JupyterLab did not answer /api/status within {SERVER_START_S} s; "
                            f"log {log}:\n{server.log_tail()}")
            time.sleep(0.5)
    try:
        yield server
    finally:
        server.shutdown_kernels()
        _stop(proc)
        logf.close()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # jupyter_server stops cleanly, kernels included
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- browser

@pytest.fixture(scope="session")
def browser():
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("browser tests need Debian's chromium on PATH "
                    "(apt-get install -y chromium); Playwright's own browser is never downloaded")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need the playwright Python package (pip install playwright)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    pg = context.new_page()
    pg.console_errors = []  # type: ignore[attr-defined]

    def on_console(msg):
        if msg.type == "error":
            pg.console_errors.append(f"console.error: {msg.text}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda err: pg.console_errors.append(f"page error: {err}"))
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def jlab(page, jupyter_server, request):
    jupyter_server.shutdown_kernels()
    jupyter_server.reset_root()
    driver = JupyterLab(page, jupyter_server, request.node.name)
    try:
        yield driver
    finally:
        jupyter_server.shutdown_kernels()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On an unexpected failure (e.g. a Playwright timeout) save a screenshot and attach the
    page's console errors to the report."""
    outcome = yield
    rep = outcome.get_result()
    driver = item.funcargs.get("jlab") if hasattr(item, "funcargs") else None
    if rep.when == "call" and rep.failed and isinstance(driver, JupyterLab) \
            and not driver.reported:
        shot = driver.screenshot(f"FAILED-{_safe(item.name)}")
        rep.sections.append(("browser", f"screenshot: {shot}\n" + driver.console_report()))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


# --------------------------------------------------------------------------- driver

class JupyterLab:
    """Drive one JupyterLab page: open a notebook, run it, read its outputs.

    Every wait is explicit and fails with a message that names what was awaited, the
    screenshot taken at that moment and the console errors seen so far.
    """

    def __init__(self, page, server: JupyterServer, test_name: str):
        self.page, self.server, self.test_name = page, server, _safe(test_name)
        self.notebook: str | None = None
        self.reported = False

    # ---- reporting
    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / (name if name.endswith(".png") else f"{name}.png")
        try:
            self.page.screenshot(path=str(path), full_page=False)
        except Exception as e:  # the page may be gone; the report says so
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
                    f"server log tail ({self.server.log}):\n{self.server.log_tail(15)}",
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
