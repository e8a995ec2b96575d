"""What a step costs on each executor: in the run's process, one process per step, a Celery worker.

    .venv/bin/python bench/executor_bench.py --home <a demo home> [--days 2013-03-20..2013-03-22]

Materializes one day's ingestion and dbt models (`raw/flights`, `raw/weather`, `stg_*`, `fct_flights`:
three steps) through `dagster asset materialize`, once per executor and day, the executors in rotating
order so drifting load falls on each alike, each run in a scratch Dagster instance:

- in_process: the local profile's executor (the steps share the run's process and its imports);
- multiprocess: Dagster's default, as production has it (each step a child process that loads the code
  location), through `bench/executor_location.py`;
- celery: dagster-celery on the machine's RabbitMQ (`mlops cluster up --only celery` in the home, started if
  it is not running; each step a task a worker executes).

Per run: the run's duration (its RUN_START to RUN_SUCCESS events), the sum of its steps' own durations and
the command's wall time; then medians, and each executor's extra cost per step against in_process
((run duration - in_process run duration) / steps). Figures go to bench/results/executor.json.
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

HERE = Path(__file__).resolve().parents[1]
RESULTS = HERE / "bench" / "results" / "executor.json"
SELECTION = "raw/flights,raw/weather,stg_flights,stg_weather,fct_flights"
BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"  # the machine's RabbitMQ, default vhost
EXECUTORS = ("in_process", "multiprocess", "celery")


def command(executor: str, day: str) -> list[str]:
    location = ["-f", str(HERE / "bench" / "executor_location.py")]
    if executor != "multiprocess":
        location = ["-m", "mlops_assets.definitions", "-a", "defs"]
    return [sys.executable, "-m", "dagster", "asset", "materialize", *location, "--select", SELECTION,
            "--partition", day]  # fmt: skip


def run_once(home: Path, executor: str, day: str, broker: str) -> dict[str, float]:
    import dagster as dg

    with tempfile.TemporaryDirectory(prefix="executor-bench-") as dagster_home:
        env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": dagster_home, "MLOPS_PROFILE": "local"}
        env.pop("MLOPS_CELERY_BROKER", None)
        if executor == "celery":
            env["MLOPS_CELERY_BROKER"] = broker
        started = time.perf_counter()
        done = subprocess.run(command(executor, day), env=env, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{executor} {day} failed:\n{done.stderr[-4000:]}")
        with dg.DagsterInstance.from_config(dagster_home) as instance:
            run = instance.get_runs(limit=1)[0]
            stats = instance.get_run_stats(run.run_id)
            steps = instance.get_run_step_stats(run.run_id)
    return {
        "run": stats.end_time - stats.start_time,
        "steps": sum(s.end_time - s.start_time for s in steps),
        "step_count": len(steps),
        "wall": wall,
    }


def ensure_workers(home: Path, broker: str) -> None:
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PROFILE": "local", "MLOPS_CELERY_BROKER": broker}
    up = [sys.executable, "-m", "mlops_assets.cli", "cluster", "up", "--only", "celery"]
    if subprocess.run(up, env=env).returncode != 0:
        raise SystemExit("mlops cluster up --only celery failed")


def parse_days(text: str) -> list[str]:
    first, last = (dt.date.fromisoformat(part) for part in text.split(".."))
    return [str(first + dt.timedelta(days=n)) for n in range((last - first).days + 1)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="a home that `mlops demo` filled")
    parser.add_argument("--days", default="2013-03-20..2013-03-22", help="first..last day, one run each")
    parser.add_argument(
        "--broker", default=BROKER, help="Celery broker URL (a vhost of its own keeps others' tasks apart)"
    )
    args = parser.parse_args()
    home = args.home.resolve()
    ensure_workers(home, args.broker)
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in EXECUTORS}
    for turn, day in enumerate(parse_days(args.days)):
        for executor in EXECUTORS[turn % 3 :] + EXECUTORS[: turn % 3]:
            one = run_once(home, executor, day, args.broker)
            figures[executor].append(one)
            print(f"  {day} {executor:12} run {one['run']:6.1f} s  steps {one['steps']:6.1f} s  "
                  f"command {one['wall']:6.1f} s", flush=True)  # fmt: skip

    def median(executor: str, figure: str) -> float:
        return statistics.median(one[figure] for one in figures[executor])

    steps = figures["in_process"][0]["step_count"]
    base = median("in_process", "run")
    print(f"\n| executor ({steps} steps, medians) | run | steps' own time | command | extra per step |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for executor in EXECUTORS:
        extra = (median(executor, "run") - base) / steps
        print(f"| {executor} | {median(executor, 'run'):.1f} s | {median(executor, 'steps'):.1f} s | "
              f"{median(executor, 'wall'):.1f} s | {extra:+.1f} s |")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"load_average_end": os.getloadavg()[0], "runs": figures}, indent=2))
    print(f"load average {os.getloadavg()[0]:.1f}; figures in {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
