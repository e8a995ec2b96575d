"""`mlops demo`, step by step, for two checkouts side by side.

    .venv/bin/python bench/demo_bench.py --run before=/tmp/before --run now=.
    .venv/bin/python bench/demo_bench.py --home before=/tmp/demo_before --home now=/tmp/demo_now

`--run NAME=CHECKOUT` runs `mlops demo` of that checkout (a git worktree of an earlier commit, say) in a
fresh MLOPS_HOME, one checkout after the other, and times the whole command; `--home NAME=HOME` reads a
home that a demo already filled. Either way the table comes from each home's Dagster instance: every step
of every run (`DagsterInstance.get_run_step_stats`), in the order the demo ran them, with its duration,
the wall time of each run (process start and Dagster's own overhead included) and the demo's total.
Figures go to bench/results/demo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
RESULTS = HERE / "bench" / "results" / "demo.json"


def run_demo(checkout: Path, home: Path, demo_args: list[str]) -> float:
    """Seconds `mlops demo` of `checkout` took in the fresh `home` (its output in home/demo.log)."""
    if home.exists():
        shutil.rmtree(home)
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(checkout / "deploy" / "local" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "PYTHONPATH": str(checkout),
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "DO_NOT_TRACK": "true",
    }
    started = time.perf_counter()
    with open(home / "demo.log", "w") as log:
        command = [sys.executable, "-m", "mlops_assets.cli", "demo", *demo_args]
        completed = subprocess.run(command, env=env, cwd=checkout, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"mlops demo of {checkout} failed (exit {completed.returncode}): {home}/demo.log")
    return seconds


def read_steps(home: Path) -> dict:
    """Runs (oldest first) with their wall time and their steps' durations, from the home's instance."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    runs = []
    with dg.DagsterInstance.get() as instance:
        records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
        for record in records:
            run = record.dagster_run
            steps = [
                {"step": s.step_key, "seconds": round(s.end_time - s.start_time, 2)}
                for s in sorted(instance.get_run_step_stats(run.run_id), key=lambda s: s.start_time or 0)
                if s.start_time and s.end_time
            ]
            wall = (record.end_time or 0) - (record.start_time or 0)
            runs.append(
                {"job": run.job_name, "status": run.status.value, "wall_s": round(wall, 2), "steps": steps}
            )
    return {"runs": runs}


def step_rows(figures: dict) -> list[tuple[str, float]]:
    """(step, seconds) in demo order; a step that ran twice (the retraining) is listed twice."""
    return [(s["step"], s["seconds"]) for run in figures["runs"] for s in run["steps"]]


def print_table(named: dict[str, dict]) -> None:
    names = list(named)
    rows = {name: step_rows(figures) for name, figures in named.items()}
    # Align by (step, occurrence) so a second training run lines up with the other side's second one.
    keys: list[tuple[str, int]] = []
    for name in names:
        seen: dict[str, int] = {}
        for step, _ in rows[name]:
            seen[step] = seen.get(step, 0) + 1
            if (step, seen[step]) not in keys:
                keys.append((step, seen[step]))
    lookup = {}
    for name in names:
        seen = {}
        for step, seconds in rows[name]:
            seen[step] = seen.get(step, 0) + 1
            lookup[(name, step, seen[step])] = seconds
    width = max(len(f"{s} (#{n})") for s, n in keys) + 2
    print(
        f"{'step':<{width}}"
        + "".join(f"{n:>12}" for n in names)
        + ("       ratio" if len(names) == 2 else "")
    )
    for step, occurrence in keys:
        label = step if occurrence == 1 else f"{step} (#{occurrence})"
        values = [lookup.get((name, step, occurrence)) for name in names]
        cells = "".join(f"{v:>12.1f}" if v is not None else f"{'-':>12}" for v in values)
        ratio = ""
        if len(values) == 2 and all(values) and values[0]:
            ratio = f"{values[1] / values[0]:>11.2f}x"
        print(f"{label:<{width}}{cells}{ratio}")
    for label, key in (("sum of steps", "steps_s"), ("sum of run walls", "runs_s"), ("demo wall", "demo_s")):
        values = [named[name].get(key) for name in names]
        cells = "".join(f"{v:>12.1f}" if v is not None else f"{'-':>12}" for v in values)
        ratio = ""
        if len(values) == 2 and all(values):
            ratio = f"{values[1] / values[0]:>11.2f}x"
        print(f"{label:<{width}}{cells}{ratio}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="append", default=[], metavar="NAME=CHECKOUT")
    parser.add_argument("--home", action="append", default=[], metavar="NAME=HOME")
    parser.add_argument("--demo-args", default="", help="arguments for mlops demo, e.g. '--end 2013-04-30'")
    parser.add_argument("--keep", help="folder for the demo homes (default: a temporary one, removed)")
    args = parser.parse_args()
    if not args.run and not args.home:
        parser.error("give --run NAME=CHECKOUT or --home NAME=HOME (twice, to compare)")
    named: dict[str, dict] = {}
    scratch = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="demo-bench-"))
    try:
        for item in args.run:
            name, checkout = item.split("=", 1)
            home = scratch / name
            seconds = run_demo(Path(checkout).resolve(), home, args.demo_args.split())
            named[name] = {**read_steps(home), "demo_s": round(seconds, 1)}
            print(f"{name}: mlops demo took {seconds:.1f} s")
        for item in args.home:
            name, home = item.split("=", 1)
            named[name] = read_steps(Path(home).resolve())
        for figures in named.values():
            figures["steps_s"] = round(sum(s for _, s in step_rows(figures)), 1)
            figures["runs_s"] = round(sum(r["wall_s"] for r in figures["runs"]), 1)
        print_table(named)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(named, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
