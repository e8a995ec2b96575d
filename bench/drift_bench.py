"""Drift report computation per day: median wall time, at several reference sizes side by side.

    .venv/bin/python bench/drift_bench.py --home /tmp/demo_home --reference-rows 2000,5000,20000

Uses what `monitoring/drift_report` uses (the champion's reference sample, the day's batch predictions,
Evidently's DataDriftPreset plus the prediction's drift, the HTML written to the lake) for every day that
has batch predictions (at most `--max-days`), after one warm-up day. The reference sample is built before
the timing starts (the asset caches it per model version).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", required=True, help="MLOPS_HOME with a champion and batch predictions")
    parser.add_argument("--reference-rows", default="2000,5000,20000")
    parser.add_argument("--max-days", type=int, default=10)
    args = parser.parse_args()

    from mlops_assets.lib.settings import load_settings
    from mlops_assets.monitoring.drift import DriftThresholds, drift_of_day, reference_frame
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.tracking import mlflow_resource
    from mlops_assets.training.registry import champion_info

    home = Path(args.home).resolve()
    settings = load_settings({"MLOPS_HOME": str(home)})
    lake = LocalObjectStore(root=str(home / "lake"))
    mlflow = mlflow_resource(settings)
    champion = champion_info(mlflow.client(), mlflow.model_name)
    if champion is None:
        raise SystemExit(f"{home}: no champion (run make demo with MLOPS_HOME={home})")
    days = sorted(o.key.rsplit("/", 1)[-1][:10] for o in lake.list_objects("predictions/batch/"))
    days = [dt.date.fromisoformat(d) for d in days][: args.max_days + 1]
    if len(days) < 2:
        raise SystemExit("need at least two days of batch predictions")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        # A lake of the bench's own (copies of the inputs): the asset's records stay as they are.
        bench_lake = LocalObjectStore(root=str(Path(scratch) / "lake"))
        for key in [champion.training_set_key, *(f"predictions/batch/{d}.parquet" for d in days)]:
            bench_lake.write_bytes(key, lake.read_bytes(key))
        lake = bench_lake
        for rows in (int(r) for r in args.reference_rows.split(",")):
            reference = reference_frame(lake, mlflow, champion, rows)
            config = DriftThresholds()
            drift_of_day(lake, reference, days[0], Path(scratch), config)  # warm-up (imports)
            seconds, shares = [], []
            for day in days[1:]:
                started = time.perf_counter()
                record = drift_of_day(lake, reference, day, Path(scratch), config)
                seconds.append(time.perf_counter() - started)
                shares.append(record["drift_share"])
            spread = (statistics.median(seconds), min(seconds), max(seconds))
            results[rows] = (*spread, statistics.median(shares))
    base = results[min(results)]
    print(f"champion v{champion.version}; {len(days) - 1} days timed ({days[1]}..{days[-1]})")
    header = ("reference rows", "median s", "min s", "max s", "vs smallest", "drift share")
    print("".join(f"{h:>{w}}" for h, w in zip(header, (15, 10, 8, 8, 13, 13), strict=True)))
    for rows, (median, low, high, share) in results.items():
        print(f"{rows:>15}{median:>10.2f}{low:>8.2f}{high:>8.2f}{median / base[0]:>12.2f}x{share:>13.3f}")
    print("(each day: Evidently DataDriftPreset over the model inputs + the prediction's drift, HTML saved)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
