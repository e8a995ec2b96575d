"""Long-lived processes of the local cluster: started detached, known by a PID file, stopped by it.

Each daemon runs in a session of its own (its process group is the daemon and whatever it forks), logs
to `<cluster dir>/logs/<name>.log` and leaves its PID in `<cluster dir>/run/<name>.pid`, written
atomically once the process has started. Stopping reads that file and signals that process group, and
only after checking that the PID still belongs to the command it started (a PID the system reused for
another program is left alone): nothing matches processes by name across the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Daemon:
    """A command to keep running, and how to tell it is ready and that a PID is still it."""

    name: str
    command: Sequence[str]
    # Ready once this TCP port on 127.0.0.1 accepts a connection (None: a process that listens on
    # nothing, such as a Celery worker, whose readiness the caller checks its own way).
    port: int | None
    # A string found in the process's command line: a reused PID does not hold it.
    marker: str
    env: dict[str, str] = field(default_factory=dict)
    # Seconds between SIGTERM and SIGKILL when stopping. Ray's `ray start --block` answers SIGTERM by
    # stopping its children one by one with long graces (about 30 s a node here) and keeps no state
    # worth the wait, so its nodes take a short one.
    stop_grace_s: float = 30.0


class ClusterDir:
    """`<home>/cluster`: the daemons' PID files, logs and work folders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run = root / "run"
        self.logs = root / "logs"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def work(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running_pid(daemon: Daemon, folder: ClusterDir) -> int | None:
    """The daemon's PID when its PID file names a live process that is still the daemon. (A process
    that is just starting shows an empty command line for a moment: use `process_alive` on the PID
    `start` returned while waiting for it.)"""
    try:
        pid = int(folder.pid_file(daemon.name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if daemon.marker in _command_line(pid) else None


def start(daemon: Daemon, folder: ClusterDir) -> tuple[int, bool]:
    """Starts the daemon unless it runs already; returns (pid, started now)."""
    pid = running_pid(daemon, folder)
    if pid is not None:
        return pid, False
    if daemon.port is not None and port_open(daemon.port):
        raise RuntimeError(
            f"{daemon.name}: port {daemon.port} on 127.0.0.1 is taken by a process this home did not start"
        )
    folder.run.mkdir(parents=True, exist_ok=True)
    folder.logs.mkdir(parents=True, exist_ok=True)
    with open(folder.log_file(daemon.name), "ab") as log:
        process = subprocess.Popen(
            list(daemon.command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **daemon.env},
            start_new_session=True,
        )
    pid_file = folder.pid_file(daemon.name)
    staged = pid_file.with_suffix(".tmp")
    staged.write_text(f"{process.pid}\n")
    staged.replace(pid_file)
    return process.pid, True


def wait_until(
    ready: Callable[[], bool], alive: Callable[[], bool], timeout: float, what: str, log: Path
) -> None:
    """Polls `ready` until it holds; fails at once when the process died, or after `timeout`."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive():
            raise RuntimeError(f"{what} exited while starting; its log: {log}\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s; its log: {log}\n{_tail(log)}")
        time.sleep(0.5)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(daemon: Daemon, folder: ClusterDir) -> bool:
    """Stops the daemon's process group (SIGTERM, then SIGKILL after the daemon's grace); True if it was
    running. The PID file goes either way: a stale one names nothing of ours."""
    pid = running_pid(daemon, folder)
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + daemon.stop_grace_s
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if process_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while process_alive(pid):
                time.sleep(0.1)
    folder.pid_file(daemon.name).unlink(missing_ok=True)
    return pid is not None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # the daemon leads its own session: its group id is its PID


def process_alive(pid: int) -> bool:
    """True while the process exists and has not been reaped as a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
