"""Daily increment: one new day through raw, dbt, Spark features and the online store, via the CLI.

Prepares a home with a first window (replay + `mlops demo`-like runs), then for each following day:
replay that day, materialize its daily assets in one run, then its online-store partition. Prints
each day's wall time per stage and the medians.

    .venv/bin/python bench/increment_bench.py [--home DIR] [--days 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlops_assets.demo import DAILY_SELECTION, IN_PROCESS, REFERENCE_SELECTION, materialize_command

FIRST_WINDOW = (dt.date(2013, 1, 1), dt.date(2013, 1, 7))


def run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:8])} failed:\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
        )
    return time.perf_counter() - started


def materialize(selection: str, env: dict[str, str], partition: str | None = None, window: str | None = None):
    options = ["--partition", partition] if partition else (["--partition-range", window] if window else [])
    return run(materialize_command(selection, *options, "--config-json", json.dumps(IN_PROCESS)), env)


def replay(start: dt.date, end: dt.date, env: dict[str, str]) -> float:
    return run(
        [str(Path(sys.executable).parent / "mlops"), "replay", "--start", str(start), "--end", str(end)],
        env,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", help="MLOPS_HOME to use (default: a new temporary directory)")
    parser.add_argument("--days", type=int, default=3, help="how many new days to time")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="mlops-increment-"))
    env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
           "GX_ANALYTICS_ENABLED": "false"}  # fmt: skip
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    start, end = FIRST_WINDOW
    print(f"preparing {start}..{end} in {home} ...", flush=True)
    replay(start, end, env)
    materialize(REFERENCE_SELECTION, env)
    materialize(DAILY_SELECTION, env, window=f"{start}...{end}")
    materialize("features/feature_views", env)
    materialize("features/online_store", env, window=f"{start}...{end}")
    rows = []
    for offset in range(1, args.days + 1):
        day = (end + dt.timedelta(days=offset)).isoformat()
        timings = {"replay": replay(end + dt.timedelta(days=offset), end + dt.timedelta(days=offset), env)}
        timings["raw+dbt+features"] = materialize(DAILY_SELECTION, env, partition=day)
        timings["online_store"] = materialize("features/online_store", env, partition=day)
        timings["total"] = sum(timings.values())
        rows.append((day, timings))
        print(day, "  ".join(f"{k} {v:.1f}s" for k, v in timings.items()), flush=True)
    print("\nmedian over", len(rows), "days:")
    for stage in rows[0][1]:
        print(f"  {stage:<18} {statistics.median(t[stage] for _, t in rows):6.1f}s")


if __name__ == "__main__":
    main()
