"""A class challenge on a real multi-user JupyterHub on this machine (`make class-demo`).

    python -m bench.class_demo install            # JupyterHub (pip) and its proxy (npm), once
    python -m bench.class_demo serve [--dir D]    # the hub on http://127.0.0.1:8000 until Ctrl-C

`serve` makes (or keeps) a challenge in `D/challenge` (`sft-lab class new ... --budget 8`,
the tiny random model unless `--model default`), its `submissions/` writable by every user
(sticky, as /tmp: nobody can remove another's), and starts JupyterHub bound to 127.0.0.1: a
shared password (SharedPasswordAuthenticator, any user name), SimpleLocalProcessSpawner (no
system users: each user's home is `D/home/<name>`), each single-user server JupyterLab from
this project's venv (so `lab` and `widgets` import) with HF_HUB_OFFLINE=1 and the model
prepared once, before anyone logs in, in the prepared-models folder of whoever runs the demo
(`SFT_LAB_CACHE`, else ~/.cache/sft-lab), shared by every user. Each home gets
`challenge.ipynb` (`Lab(challenge=D/challenge)`); the user named `teacher` also gets
`gallery.ipynb` (`Lab(..., teacher=True)`). Ctrl-C (or SIGTERM) stops the hub, which stops
the proxy and every user's server; anything of theirs still running after that is ended by
its process id.

The browser run of it is tests/browser/test_class_hub.py (`make class-demo-test`), which uses
`start_hub` below.

A demo, not a deployment: SimpleLocalProcessSpawner runs every user as the hub's own user. On a
real hub (system users, or one container each) the same settings apply; what changes is the
shared folder (see notebooks/INSTRUCTOR.md, "Running a class challenge").
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent  # this project's venv: the single-user servers use it too
PROXY_PREFIX = Path(os.environ.get("SFT_LAB_PROXY_PREFIX", VENV_BIN.parent / "class-demo-proxy"))
PASSWORD = "class-demo"  # the shared password (at least 8 characters: JupyterHub's rule)
TEACHER = "teacher"
HUB_SPEC = "jupyterhub>=5.3"  # 5.3: SharedPasswordAuthenticator
PROXY_SPEC = "configurable-http-proxy"
START_S = 120  # a 2-core machine: the hub and its proxy take 5-20 s


# ----------------------------------------------------------------------------- install

def proxy_command() -> str | None:
    """configurable-http-proxy: the one installed by `install`, else one on PATH."""
    local = PROXY_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.exists() else shutil.which("configurable-http-proxy")


def hub_installed() -> bool:
    return (VENV_BIN / "jupyterhub").exists() and (VENV_BIN / "jupyterhub-singleuser").exists()


def missing() -> list[str]:
    """What `install` would still have to install, each with how to get it."""
    out = []
    if not hub_installed():
        out.append(f"JupyterHub in {VENV_BIN.parent} ({sys.executable} -m pip install '{HUB_SPEC}')")
    if not proxy_command():
        out.append(f"configurable-http-proxy (npm install --prefix {PROXY_PREFIX} {PROXY_SPEC}; "
                   "npm comes with Debian's nodejs and npm packages)")
    return out


def install() -> None:
    if not hub_installed():
        # into the project's venv: jupyterhub-singleuser must run where JupyterLab and the lab are
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", HUB_SPEC], check=True)
    if not proxy_command():
        if not shutil.which("npm"):
            sys.exit("class-demo: npm not found; it installs JupyterHub's proxy "
                     "(configurable-http-proxy). Install Debian's nodejs and npm "
                     "(apt-get install -y nodejs npm) and run `make class-demo` again.")
        PROXY_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(PROXY_PREFIX), "--no-audit", "--no-fund",
                        "--loglevel=error", PROXY_SPEC], check=True)
    print(f"class-demo: JupyterHub in {VENV_BIN.parent}, proxy {proxy_command()}")


# ----------------------------------------------------------------------------- set-up

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notebook(*cells: str) -> dict:
    return {"cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None,
                       "outputs": [], "source": src} for i, src in enumerate(cells)],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def make_challenge(root: Path, *, budget: int = 8, model: str = "tiny-random") -> Path:
    """`root/challenge`, made with the command a teacher types, kept if it is there already;
    its folders writable by every user (submissions/ sticky, as /tmp: nobody removes another's)."""
    challenge = root / "challenge"
    if not (challenge / "challenge.json").exists():
        subprocess.run([str(VENV_BIN / "sft-lab"), "class", "new", str(challenge), "--starter", "support",
                        "--budget", str(budget), "--model", model], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    inbox = challenge / "submissions" / ".incoming"
    inbox.mkdir(parents=True, exist_ok=True)
    os.chmod(challenge, 0o755)
    for f in challenge.iterdir():
        if f.is_file():
            os.chmod(f, 0o644)
    for d in (challenge / "submissions", inbox):
        os.chmod(d, 0o1777)
    return challenge


CONFIG = '''# Written by bench/class_demo.py: a class challenge on JupyterHub, on this machine only.
import json, os
from pathlib import Path

c = get_config()  # noqa: F821
ROOT, CHALLENGE, VENV_BIN = {root!r}, {challenge!r}, {venv_bin!r}

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = ROOT + "/hub/proxy.pid"
c.JupyterHub.db_url = "sqlite:///" + ROOT + "/hub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = ROOT + "/hub/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = ROOT + "/hub/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server
c.JupyterHub.cleanup_proxy = True

# Any user name with one shared password (a room without accounts).
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password!r}
c.Authenticator.allow_all = True

# No system users: every user runs as the hub's user, with a home of their own.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = ROOT + "/home/{{username}}"
c.Spawner.cmd = [VENV_BIN + "/jupyterhub-singleuser"]  # JupyterLab from the project's venv
c.Spawner.default_url = "/lab"
c.Spawner.args = ["--LabApp.news_url=None",
                  "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                  "--LabApp.extension_manager=readonly",
                  "--LabApp.expose_app_in_browser=True"] + (["--allow-root"] if os.geteuid() == 0 else [])
c.Spawner.environment = {{"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                         "SFT_LAB_CACHE": {cache!r},  # the model prepared once, for everyone
                         "PATH": VENV_BIN + ":" + os.environ.get("PATH", "/usr/bin:/bin")}}
c.Spawner.start_timeout = 180  # a 2-core machine under load
c.Spawner.http_timeout = 180


def notebook(*cells):
    return {{"cells": [{{"cell_type": "code", "id": f"c{{i}}", "metadata": {{}}, "execution_count": None,
                        "outputs": [], "source": s}} for i, s in enumerate(cells)],
            "metadata": {{"kernelspec": {{"name": "python3", "display_name": "Python 3", "language": "python"}}}},
            "nbformat": 4, "nbformat_minor": 5}}


def seed_home(spawner):
    """Each user's home: the challenge notebook (the teacher's gallery too), no news toast."""
    home = Path(spawner.home_dir)
    (home / ".jupyter" / "labconfig").mkdir(parents=True, exist_ok=True)
    (home / ".jupyter" / "labconfig" / "page_config.json").write_text(json.dumps(
        {{"disabledExtensions": {{"@jupyterlab/apputils-extension:announcements": True}}}}))
    files = {{"challenge.ipynb": notebook(
        "# The class challenge: write at most the budget's examples in the Dataset tab, then Submit.\\n"
        "from widgets import Lab\\n"
        f"Lab(challenge={{CHALLENGE!r}}, path='class_dataset.jsonl')")}}
    if spawner.user.name == {teacher!r}:
        files["gallery.ipynb"] = notebook(
            "# The teacher's view: every submission, ranked (the Gallery tab).\\n"
            "from widgets import Lab\\n"
            f"Lab(challenge={{CHALLENGE!r}}, path='teacher_dataset.jsonl', teacher=True)")
    for name, nb in files.items():
        if not (home / name).exists():
            (home / name).write_text(json.dumps(nb, indent=1))


c.Spawner.pre_spawn_hook = seed_home
'''


def model_cache() -> str:
    """The prepared-models folder of whoever runs the demo (lab/models.py's rule): every user's
    server reads the model there instead of preparing a copy in their own home."""
    return os.environ.get("SFT_LAB_CACHE") or str(Path.home() / ".cache" / "sft-lab")


def prepare_model(model: str) -> None:
    """Prepare the challenge's model once, before anyone logs in (no-op when it is there)."""
    subprocess.run([str(VENV_BIN / "sft-lab"), "fetch-model", model, "--no-timeline"], check=True,
                   env={**os.environ, "SFT_LAB_CACHE": model_cache()}, stdout=subprocess.DEVNULL)


def write_config(root: Path, challenge: Path, *, port: int, proxy: str) -> Path:
    (root / "hub").mkdir(parents=True, exist_ok=True)
    (root / "home").mkdir(exist_ok=True)
    path = root / "hub" / "jupyterhub_config.py"
    path.write_text(CONFIG.format(root=str(root), challenge=str(challenge), venv_bin=str(VENV_BIN),
                                  port=port, hub_port=_free_port(), proxy_api_port=_free_port(),
                                  proxy=proxy, password=PASSWORD, teacher=TEACHER, cache=model_cache()))
    return path


# ----------------------------------------------------------------------------- the hub

def _children(pid: int) -> list[int]:
    """Every process below `pid` (the proxy, users' servers, their kernels), from /proc."""
    parents: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _running(pid: int) -> bool:
    """Alive and not a zombie (an ended child not yet reaped still answers kill(pid, 0))."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return "?"


class Hub:
    """A running JupyterHub: its URL, root folder, challenge folder and log; `stop()` ends it all."""

    def __init__(self, proc: subprocess.Popen, url: str, root: Path, challenge: Path, log: Path, logf):
        self.proc, self.url, self.root, self.challenge, self.log, self._logf = proc, url, root, challenge, log, logf
        self.seen: set[int] = set()  # every process seen below the hub, ended by id if left over

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def watch(self) -> None:
        """Remember the processes below the hub now (call after each spawn)."""
        if self.proc.poll() is None:
            self.seen.update(_children(self.proc.pid))

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(ln[:300] for ln in self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no hub log)"

    def stop(self) -> list[int]:
        """SIGTERM the hub (it stops the users' servers and the proxy), then end by id whatever
        of theirs is still running. Returns the ids that had to be ended that way."""
        self.watch()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        left = [pid for pid in sorted(self.seen) if _running(pid)]
        if left:
            print("class-demo: still running after the hub stopped, ended by id: "
                  + "; ".join(f"{pid} {_cmdline(pid)}" for pid in left), file=sys.stderr)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if left:
                time.sleep(3)
        self._logf.close()
        return left


def start_hub(root: Path, *, port: int | None = None, budget: int = 8, model: str = "tiny-random") -> Hub:
    """Make the challenge and the config under `root`, start JupyterHub, wait until it answers."""
    if missing():
        raise RuntimeError("class-demo needs " + "; and ".join(missing()) +
                           " (`make class-demo` installs both)")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    challenge = make_challenge(root, budget=budget, model=model)
    prepare_model(json.loads((challenge / "challenge.json").read_text())["model"])
    port = port or _free_port()
    config = write_config(root, challenge, port=port, proxy=proxy_command())
    log = root / "hub" / "jupyterhub.log"
    logf = open(log, "w")  # noqa: SIM115 - open while the hub runs, closed by stop()
    proc = subprocess.Popen([str(VENV_BIN / "jupyterhub"), "-f", str(config)], cwd=root / "hub",
                            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"})
    hub = Hub(proc, f"http://127.0.0.1:{port}", root, challenge, log, logf)
    deadline = time.monotonic() + START_S
    while True:
        if proc.poll() is not None:
            hub.stop()
            raise RuntimeError(f"JupyterHub exited with code {proc.returncode} before answering; "
                               f"its log {log}:\n{hub.log_tail()}")
        try:
            urllib.request.urlopen(f"{hub.url}/hub/api/", timeout=5).read()
            hub.watch()
            return hub
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                hub.stop()
                raise RuntimeError(f"JupyterHub did not answer {hub.url}/hub/api/ within {START_S} s; "
                                   f"its log {log}:\n{hub.log_tail()}") from None
            time.sleep(0.5)


def serve(root: Path, port: int, budget: int, model: str) -> None:
    kept = (root / "challenge" / "challenge.json").exists()
    hub = start_hub(root, port=port, budget=budget, model=model)
    spec = json.loads((hub.challenge / "challenge.json").read_text())
    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"""
JupyterHub: {hub.url}  (this machine only)
  participants: any user name, password {PASSWORD!r}; open challenge.ipynb and run it
  teacher:      user name {TEACHER!r}, same password; open gallery.ipynb
  challenge:    {hub.challenge}  (budget {spec["budget"]}, model {spec["model"]}{
      "; kept from an earlier run with its submissions: remove the folder for a new one" if kept else ""})
  homes:        {hub.root / 'home'}   hub log: {hub.log}
Ctrl-C stops the hub, its proxy and every user's server.""", flush=True)
    try:
        while not stop["now"] and hub.proc.poll() is None:
            hub.watch()
            time.sleep(1)
    finally:
        left = hub.stop()
        print(f"class-demo: stopped{f' (ended {len(left)} left-over processes by id)' if left else ''}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.class_demo", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="install JupyterHub (pip) and configurable-http-proxy (npm) if missing")
    s = sub.add_parser("serve", help="make the challenge, start the hub, stop it all on Ctrl-C")
    s.add_argument("--dir", default="/tmp/class-demo", help="where the challenge, homes and hub files go")
    s.add_argument("--port", type=int, default=8000, help="the hub's port on 127.0.0.1 (default: 8000)")
    s.add_argument("--budget", type=int, default=8, help="most examples per submission (default: 8)")
    s.add_argument("--model", default="tiny-random",
                   help="the challenge's model (default: tiny-random, seconds per submission; "
                        "'default' for a real rehearsal)")
    a = ap.parse_args(argv)
    if a.cmd == "install":
        install()
    else:
        try:
            serve(Path(a.dir), a.port, a.budget, a.model)
        except RuntimeError as e:
            print(f"class-demo: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
