"""Fixtures for the browser tests: a private JupyterLab server and headless Chromium.

`jupyter_server` (session): JupyterLab on 127.0.0.1, a free port, a random token, serving a
temporary copy of `notebooks/`, with its config/data/runtime dirs in tmp (the user's settings
never leak in), announcements off, `SFT_LAB_FAST=1` so notebooks use the tiny random model.

`browser` (session): Chromium from the system (Debian's `chromium`), driven by Playwright.
Playwright's own browser download is never used. Without `chromium` on PATH the browser tests
are skipped with the reason.

`jlab` (per test): a fresh page wrapped in `JupyterLab` (jupyterlab_driver.py), a small
driver with explicit waits whose failures carry a screenshot path and the page's console errors.
"""
from __future__ import annotations

import json
import os
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
from jupyterlab_driver import ARTIFACTS, JupyterLab, safe_name  # beside this file

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"

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

# --------------------------------------------------------------------------- server

# Server log lines that never explain a failure; left out of failure messages.
_LOG_NOISE = ("Skipped non-installed server", "running over TCP without encryption",
              "websocket_ping_timeout", "MissingIDFieldWarning", "_validate(nbdict")


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
                     if not any(noise in ln for noise in _LOG_NOISE)]
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
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # one server per test process (make test runs two)
    log = ARTIFACTS / (f"jupyter-server-{worker}.log" if worker else "jupyter-server.log")
    port, token = _free_port(), secrets.token_hex(24)
    env = dict(os.environ,
               SFT_LAB_FAST=os.environ.get("SFT_LAB_BROWSER_FAST", "1"),  # 0: the default model
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
    logf = open(log, "w")  # noqa: SIM115 - open for the whole session, closed at the end
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
        shot = driver.screenshot(f"FAILED-{safe_name(item.name)}")
        rep.sections.append(("browser", f"screenshot: {shot}\n" + driver.console_report()))
