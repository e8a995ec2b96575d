"""Feast's point-in-time join, two checkouts side by side: wall time and equality, cell for cell.

    .venv/bin/python bench/pit_bench.py --home data --before /tmp/before [--repeats 3]

For each checkout (this one, and `--before`, e.g. a git worktree of an earlier commit) and each repeat, a
fresh process builds, through that checkout's FeastResource on the home's feature files and registry:
  - the training set of `--window` (fct_flights' labelled flights, Feast `get_historical_features` with the
    feature service, exactly as `features/training_set` builds it);
  - batch predictions' join for each of `--days` days (the day's scheduled flights at their prediction
    times, as `predictions/batch_predictions` asks Feast for them).
Turns alternate between the checkouts, so background load falls on both alike. It prints the medians, the
ratio, and how many cells of the two training sets differ (compared as float64, nulls equal).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> int:
    """One measurement in this process, with whatever `mlops_assets` PYTHONPATH gives."""
    from mlops_assets.features.training_set import build_training_set, entity_frame
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.serving.batch import ENTITY_COLUMNS, scheduled_flights

    home = Path(args.home).resolve()
    feast = FeastResource(home=str(home))
    feast.get_store()  # the registry is read once, outside the timings, as a run's first step does
    start, end = args.window.split(",")
    started = time.perf_counter()
    entities = entity_frame(home / "warehouse.duckdb", start, end)
    frame, _ = build_training_set(feast, entities, args.service)
    training_s = time.perf_counter() - started
    frame.to_parquet(args.out)
    lake = LocalObjectStore(root=str(home / "lake"))
    chunked = "chunk_days" in inspect.signature(feast.historical_features).parameters
    day_seconds = []
    first = dt.date.fromisoformat(args.first_day)
    for offset in range(args.days):
        flights = scheduled_flights(lake, first + dt.timedelta(days=offset))
        entity_df = flights[[*ENTITY_COLUMNS, "event_timestamp"]]
        started = time.perf_counter()
        if chunked:  # the earlier checkouts' batch predictions asked for 7-day chunks
            feast.historical_features(entity_df, args.service, chunk_days=7)
        else:
            feast.historical_features(entity_df, args.service)
        day_seconds.append(time.perf_counter() - started)
    print(json.dumps({"training_s": training_s, "rows": len(frame), "day_s": day_seconds}))
    return 0


def measure(checkout: Path, args: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    command = [sys.executable, __file__, "--child", "--home", args.home, "--window", args.window,
               "--service", args.service, "--first-day", args.first_day, "--days", str(args.days),
               "--out", str(out)]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, cwd=checkout)
    if completed.returncode != 0:
        raise SystemExit(f"{checkout}: exit {completed.returncode}\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def differing_cells(a_path: Path, b_path: Path) -> tuple[int, int, list[str]]:
    """(cells that differ, cells compared, columns with a difference) of two training sets."""
    import numpy as np
    import pandas as pd

    a, b = pd.read_parquet(a_path), pd.read_parquet(b_path)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return -1, 0, [f"shapes differ: {a.shape} vs {b.shape}"]
    a = a.sort_values(["event_timestamp", "flight_id"]).reset_index(drop=True)
    b = b.sort_values(["event_timestamp", "flight_id"]).reset_index(drop=True)
    differ, columns = 0, []
    for column in a.columns:
        left, right = a[column], b[column]
        if pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right):
            x, y = left.astype("float64").to_numpy(), right.astype("float64").to_numpy()
            same = (x == y) | (np.isnan(x) & np.isnan(y))
        else:
            same = (left.astype(str) == right.astype(str)).to_numpy()
        if (~same).sum():
            differ += int((~same).sum())
            columns.append(column)
    return differ, a.size, columns


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home", required=True, help="MLOPS_HOME with feature files, registry and fct_flights"
    )
    parser.add_argument("--before", help="another checkout to compare with (a git worktree)")
    parser.add_argument("--window", default="2013-01-01,2013-03-31")
    parser.add_argument("--service", default="flight_delay_v1")
    parser.add_argument("--first-day", default="2013-03-01", help="first day of the batch joins")
    parser.add_argument("--days", type=int, default=5, help="days of batch joins")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    checkouts = {"now": HERE, **({"before": Path(args.before).resolve()} if args.before else {})}
    results: dict[str, list[dict]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory() as scratch:
        outputs = {name: Path(scratch) / f"{name}.parquet" for name in checkouts}
        for repeat in range(args.repeats):
            for name, checkout in checkouts.items():
                results[name].append(measure(checkout, args, outputs[name]))
                figures = results[name][-1]
                day = statistics.median(figures["day_s"])
                print(
                    f"repeat {repeat + 1} {name:>6}: training set {figures['training_s']:.2f} s "
                    f"({figures['rows']} rows), batch join {day:.3f} s/day"
                )
        print(
            f"\nwindow {args.window}, {args.days} batch days from {args.first_day}, medians of {args.repeats}"
        )
        print(f"{'':>8}{'training set s':>16}{'batch join s/day':>18}")
        medians = {}
        for name, runs in results.items():
            training = statistics.median(r["training_s"] for r in runs)
            per_day = statistics.median(statistics.median(r["day_s"]) for r in runs)
            medians[name] = (training, per_day)
            print(f"{name:>8}{training:>16.2f}{per_day:>18.3f}")
        if "before" in medians:
            (now_t, now_d), (old_t, old_d) = medians["now"], medians["before"]
            print(f"{'speed-up':>8}{old_t / now_t:>15.1f}x{old_d / now_d:>17.1f}x")
            differ, cells, columns = differing_cells(outputs["now"], outputs["before"])
            print(
                f"training sets: {differ} of {cells} cells differ"
                + (f" ({', '.join(columns)})" if columns else "")
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
