"""`make stop` ends the processes `make ui` / `make year` started (their PID files: dagster dev, the
replay or the stream's producer and consumer, the metrics exporter) and nothing else."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TERMINABLE_SLEEP = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_DFL); print('ready', flush=True); "
    "time.sleep(600)"
)


def _ended(process: subprocess.Popen, timeout: float = 10.0) -> bool:
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_make_stop_ends_what_make_year_started_and_spares_lookalikes(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # What `make year` leaves: each process leads its own process group, its PID in a file.
    # SIGTERM back to its default first: an ignored signal is inherited through exec, and a pytest worker
    # may have inherited SIGTERM ignored (a `make year` shell never does).
    started = {
        name: subprocess.Popen(
            [sys.executable, "-c", TERMINABLE_SLEEP],
            start_new_session=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("replay", "stream-publish", "stream-consume", "metrics", "dagster-dev")
    }
    for name, process in started.items():
        assert process.stdout.readline() == "ready\n"  # SIGTERM is its default by now
        (run_dir / f"{name}.pid").write_text(f"{process.pid}\n")
        # Reaped at once, as init reaps a daemonized process: a zombie would still answer `kill -0`.
        threading.Thread(target=process.wait, daemon=True).start()
    # Someone else's processes whose command lines look like ours (the old `pkill -f` ended these).
    lookalikes = [
        subprocess.Popen(["bash", "-c", f'exec -a "{title}" sleep 600'])
        for title in (
            "mlops replay --start 2013-04-01",
            "mlops stream consume",
            "mlops metrics --port 9400",
            "dagster dev -w workspace.yaml",
        )
    ]
    try:
        stop = subprocess.run(
            ["make", "--no-print-directory", "stop", f"MLOPS_HOME={tmp_path}"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert stop.returncode == 0, stop.stderr
        assert all(_ended(process) for process in started.values())
        assert all(f"stopped {name}" in stop.stdout for name in started)
        assert not list(run_dir.glob("*.pid"))
        time.sleep(0.2)
        assert all(process.poll() is None for process in lookalikes)
        again = subprocess.run(
            ["make", "--no-print-directory", "stop", f"MLOPS_HOME={tmp_path}"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert again.returncode == 0 and "stopped" not in again.stdout  # nothing left to stop: harmless
    finally:
        for process in [*started.values(), *lookalikes]:
            process.kill()
            process.wait()
