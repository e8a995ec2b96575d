"""`make stop` ends the processes `make ui` / `make year` started (their PID files: dagster dev, the
replay or the stream's producer and consumer, the metrics exporter) and nothing else."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
    started = {
        name: subprocess.Popen(["sleep", "60"], start_new_session=True)
        for name in ("replay", "stream-publish", "stream-consume", "metrics", "dagster-dev")
    }
    for name, process in started.items():
        (run_dir / f"{name}.pid").write_text(f"{process.pid}\n")
        # Reaped at once, as init reaps a daemonized process: a zombie would still answer `kill -0`.
        threading.Thread(target=process.wait, daemon=True).start()
    # Someone else's processes whose command lines look like ours (the old `pkill -f` ended these).
    lookalikes = [
        subprocess.Popen(["bash", "-c", f'exec -a "{title}" sleep 60'])
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
