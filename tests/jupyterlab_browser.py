"""A real JupyterLab driven by headless Chromium (a helper for the tests, not a test module).

    with jupyter_lab(root_dir, env={"SKINLIB_DATA": ...}) as lab:
        driver = chromium_driver()
        try:
            open_notebook(driver, lab, "02_classical_masks.ipynb")
            run_all_cells(driver)
            ...
        finally:
            driver.quit()

`jupyter_lab` starts `jupyter lab` from this Python's environment (the project's venv: its `jupyter`, and the
kernel spec `python3`, whose `python` jupyter_client replaces by the server's own interpreter, the venv's) on a
free localhost port with a random token, waits until its REST API answers, and always stops it and the kernels
it started. Lab gets its own settings and workspace folders, so a developer's own Lab settings cannot change what
the browser sees: notebook windowing is off (every cell stays in the page, off-screen or not) and the news prompt
never appears. `--LabApp.expose_app_in_browser=True` puts the Lab application on
`window.jupyterapp`, which the browser helpers use to run commands (`notebook:run-all-cells`) and to read the
kernel's status, instead of clicking through menus.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

#: The JupyterLab extension that renders ipywidgets (without it Lab shows "Loading widget..." forever).
WIDGETS_EXTENSION = "@jupyter-widgets/jupyterlab-manager"

#: Seconds for Lab to answer, a notebook to open, its kernel to start.
SERVER_TIMEOUT = 60
OPEN_TIMEOUT = 60

#: Lab settings the tests rely on, as `<plugin folder>/<plugin>.jupyterlab-settings` files.
LAB_SETTINGS = {
    # every cell in the DOM: with windowing a cell far below the viewport is not rendered at all
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # no "Would you like to receive official Jupyter news?" toast over the page
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}


def jupyter_executable() -> Path:
    """The `jupyter` of this Python's environment (the venv the tests run in)."""
    return Path(sys.executable).parent / "jupyter"


def lab_missing_reason() -> str | None:
    """None when JupyterLab with the widgets extension can run here; else what is missing."""
    missing = []
    for module in ("jupyterlab", "ipywidgets", "ipykernel"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the {module} package")
    if not jupyter_executable().is_file():
        missing.append(f"{jupyter_executable()}")
    extension = Path(sys.prefix, "share", "jupyter", "labextensions", WIDGETS_EXTENSION, "package.json")
    if not extension.is_file():
        missing.append(f"the JupyterLab extension {WIDGETS_EXTENSION} ({extension})")
    if not missing:
        return None
    return f"the live widget check needs {', '.join(missing)}: pip install -e '.[course]'"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """A running `jupyter lab`: where it answers, its token, its log file and its process."""

    base_url: str  # http://127.0.0.1:PORT/ (ends in "/")
    token: str
    root_dir: Path
    log: Path
    process: subprocess.Popen

    def url(self, path: str) -> str:
        """`path` (e.g. "lab/tree/x.ipynb") on this server, with the token."""
        return f"{self.base_url}{path.lstrip('/')}{'&' if '?' in path else '?'}token={self.token}"

    def api(self, path: str, post: dict | None = None):
        """GET (or with `post`, POST that JSON) of the server's REST API (`path` after /api/), decoded from JSON."""
        request = urllib.request.Request(
            f"{self.base_url}api/{path.lstrip('/')}",
            data=None if post is None else json.dumps(post).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log (for failure messages)."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def write_lab_settings(settings_dir: Path, settings: dict = LAB_SETTINGS) -> None:
    for name, values in settings.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def child_pids(pid: int) -> list[int]:
    """Living child processes of `pid` (its kernels, for a Jupyter server), read from /proc; [] without /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (command)": state, ppid, ...
            if int(fields[1]) == pid and fields[0] != "Z":
                children.append(int(stat.parent.name))
    return children


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, ended but not yet reaped, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc").is_dir()  # no /proc at all: kill() is all we know
    except IndexError:
        return False
    return state != "Z"


def _stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop the server and its kernels: SIGTERM (it shuts its kernels down), SIGKILL after `timeout` s.

    jupyter_client starts every kernel in a session of its own, so the kernels are not in the server's process
    group; those still running once the server has ended (a server killed, not shut down) are killed by pid.
    """
    if process.poll() is not None:
        return
    kernels = child_pids(process.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)  # the group is the server's alone (start_new_session)
        try:
            process.wait(timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in kernels:
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # a kernel whose server has gone ends by itself within about a second
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def jupyter_lab(root_dir, work_dir=None, env: dict | None = None, timeout: float = SERVER_TIMEOUT):
    """Run `jupyter lab` on `root_dir` (a free localhost port, a random token); yields a `LabServer`.

    `work_dir` holds Lab's settings, workspaces, runtime files and log (default: beside `root_dir`);
    `env` is added to this process's environment. The server is stopped on leaving, also on an error.
    """
    root_dir = Path(root_dir).resolve()
    work_dir = Path(work_dir or root_dir.parent / "lab").resolve()
    for sub in ("settings", "workspaces", "runtime"):
        (work_dir / sub).mkdir(parents=True, exist_ok=True)
    write_lab_settings(work_dir / "settings")
    port, token = free_port(), secrets.token_hex(16)
    command = [
        str(jupyter_executable()),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.user_settings_dir={work_dir / 'settings'}",
        f"--LabApp.workspaces_dir={work_dir / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.terminals_enabled=False",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")  # CI runs as root
    full_env = {
        **os.environ,
        "JUPYTER_PREFER_ENV_PATH": "1",
        "JUPYTER_RUNTIME_DIR": str(work_dir / "runtime"),
        # the venv first, so anything the server starts by name ("python") is the venv's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **(env or {}),
    }
    log = work_dir / "jupyter-lab.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=root_dir,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, signalled as one
        )
    server = LabServer(f"http://127.0.0.1:{port}/", token, root_dir, log, process)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                server.api("status")
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyter lab did not answer within {timeout} s:\n{server.log_tail()}")
            time.sleep(0.25)
        yield server
    finally:
        _stop(process)


# ------------------------------------------------------------------------------------------ browser


def wait_for(driver, script: str, *args, timeout: float = 60, what: str = "", poll: float = 0.25):
    """Evaluate the JavaScript `script` (a function body; `arguments` are `args`) until it returns a truthy value.

    Returns that value; raises TimeoutError naming `what` (and the last value) after `timeout` s.
    """
    deadline = time.monotonic() + timeout
    value = None
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what or script}; last value {value!r}")
        time.sleep(poll)


#: The notebook panel in Lab's main area (`panel`, or null); whether its kernel is idle.
_NOTEBOOK = "const app = window.jupyterapp; const panel = app && app.shell.currentWidget;"
_KERNEL_IDLE = (
    _NOTEBOOK + "if (!panel || !panel.sessionContext) return false;"
    "const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;"
    "return !!kernel && kernel.status === 'idle';"
)


def open_notebook(driver, lab: LabServer, name: str, timeout: float = OPEN_TIMEOUT) -> dict:
    """Open `lab/tree/<name>` and wait until the notebook shows its cells and its kernel is idle.

    Returns {"path": ..., "kernel": kernel name, "status": "idle"}.
    """
    driver.get(lab.url(f"lab/tree/{name}"))
    wait_for(
        driver,
        _NOTEBOOK + "return !!(panel && panel.content && panel.content.widgets && panel.content.widgets.length"
        " && document.querySelector('.jp-Notebook .jp-Cell'));",
        timeout=timeout,
        what=f"{name} to open in JupyterLab",
    )
    wait_for(driver, _KERNEL_IDLE, timeout=timeout, what=f"the kernel of {name} to be idle")
    return driver.execute_script(
        _NOTEBOOK + "const s = panel.sessionContext;"
        "return {path: panel.context.path, kernel: s.session.kernel.name, status: s.session.kernel.status};"
    )


def run_all_cells(driver, timeout: float = 120) -> float:
    """Run every cell of the current notebook (Lab's `notebook:run-all-cells`); wait until all have run.

    "Have run": the kernel is idle, no cell is queued or running (`[*]`) and every non-empty code cell has an
    execution count. Returns the seconds it took. Raises RuntimeError as soon as a cell shows an error output
    (Lab then stops running the rest).
    """
    started = time.monotonic()
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    state = (
        _NOTEBOOK + "const cells = panel.content.widgets.filter(c => c.model.type === 'code');"
        "const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;"
        "const errors = cells.flatMap(c => c.model.outputs.toJSON()).filter(o => o.output_type === 'error')"
        "  .map(o => o.ename + ': ' + o.evalue);"
        "const pending = cells.filter(c => c.promptNode && c.promptNode.textContent.includes('*')).length;"
        "const unrun = cells.filter(c => c.model.executionCount === null && c.model.sharedModel.getSource().trim());"
        "const idle = !!kernel && kernel.status === 'idle' && pending === 0;"
        "if (idle && errors.length) return {errors: errors};"
        "return idle && unrun.length === 0 ? {errors: []} : null;"
    )
    result = wait_for(driver, state, timeout=timeout, what="every cell to run", poll=0.5)
    if result["errors"]:
        raise RuntimeError("a cell failed:\n" + "\n".join(result["errors"]))
    return time.monotonic() - started


_KERNEL_RUN = (
    "const done = arguments[arguments.length - 1];" + _NOTEBOOK + "const kernel = panel.sessionContext.session.kernel;"
    "const future = kernel.requestExecute({code: arguments[0], silent: false, store_history: false});"
    "let text = '';"
    "future.onIOPub = msg => {"
    "  if (msg.header.msg_type === 'stream') text += msg.content.text;"
    "  if (msg.header.msg_type === 'error') text += msg.content.ename + ': ' + msg.content.evalue;"
    "};"
    "future.done.then(() => done(text), error => done('failed: ' + error));"
)


def kernel_output(driver, code: str, timeout: float = 30) -> str:
    """What `code` prints when run in the current notebook's kernel (from the browser, not stored as a cell)."""
    driver.set_script_timeout(timeout)
    return driver.execute_async_script(_KERNEL_RUN, code)
