"""A day of `monitoring/drift_report`, before and after, side by side: per-day seconds, their medians and
ratio, and whether both give the same statistics.

    .venv/bin/python bench/drift_bench.py --home /tmp/demo_home [--max-days 10] [--profile]

before  what the asset did until issue 14: Evidently's whole report per day (DataDriftPreset + the
        prediction's ValueDrift, widgets included), the statistics read back through snapshot.dict(),
        the HTML (5.7 MB) saved to the lake, the record written; timed stage by stage.
after   what it does now (`drift_of_day`): Evidently's own statistical tests on the same columns against
        a reference prepared once per run, the day's page and report inputs written, the record written;
        Evidently's HTML is rendered on demand (`mlops report html`), timed here once on the side.

Each day runs both ways in turn (the order alternates, so drifting background load falls on both alike),
after one warm-up day each (imports). Inputs are copied into a scratch lake: the home stays as it is.
The reference sample is built once (the champion's predictions on it: once per model version in the
asset, cached in the lake) and timed on its own. `--profile` adds a cProfile of the before path, per day.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

# Functions whose cumulative time the profile reports: (file suffix, function, label).
PROFILED_BEFORE = (
    ("evidently/core/report.py", "run", "Report.run, all of it"),
    ("evidently/core/datasets.py", "from_pandas", "  Dataset.from_pandas (current and reference)"),
    ("evidently/legacy/calculations/data_drift.py", "get_one_column_drift", "  per-column drift statistics"),
    ("evidently/metrics/column_statistics.py", "_render", "  ValueDrift widgets (plotly)"),
    ("evidently/presets/drift.py", "render", "  DataDriftPreset widgets (table, plotly)"),
    ("evidently/core/report.py", "dict", "Snapshot.dict()"),
    ("evidently/core/report.py", "get_html_str", "Evidently's HTML rendering"),
    ("mlops_assets/resources/storage.py", "write_bytes", "lake writes (HTML, record)"),
)
PROFILED_AFTER = (
    ("mlops_assets/monitoring/reports.py", "drift_summary", "drift_summary, all of it"),
    ("mlops_assets/monitoring/reports.py", "_column_drift", "  Evidently's tests, column by column"),
    ("mlops_assets/monitoring/pages.py", "drift_page", "the day's page"),
    ("mlops_assets/resources/storage.py", "write_bytes", "lake writes (page, inputs, record)"),
    ("mlops_assets/resources/storage.py", "read_parquet", "the day's predictions read"),
)


def timed(stages: dict[str, list[float]], name: str, call, *args):
    started = time.perf_counter()
    result = call(*args)
    stages.setdefault(name, []).append(time.perf_counter() - started)
    return result


def before_day(
    lake, reference, day: dt.date, scratch: Path, stages: dict[str, list[float]]
) -> dict[str, Any]:
    """The asset's day until issue 14, stage by stage; returns the statistics it recorded."""
    from mlops_assets.lib.keys import DRIFT_REPORT
    from mlops_assets.lib.records import encode
    from mlops_assets.monitoring.drift import DriftThresholds, drift_features
    from mlops_assets.monitoring.records import read_predictions, record_key, save_html
    from mlops_assets.monitoring.reports import evidently_drift, snapshot_summary

    thresholds = DriftThresholds()
    current = timed(stages, "read predictions", read_predictions, lake, day)
    categorical, numeric = drift_features(reference)
    snapshot, columns = timed(
        stages,
        "Report.run",
        evidently_drift,
        reference,
        current,
        categorical,
        numeric,
        thresholds.numeric_threshold,
        thresholds.categorical_threshold,
    )
    summary = timed(stages, "snapshot.dict() -> statistics", snapshot_summary, snapshot, columns)
    html_key = record_key(DRIFT_REPORT, day, "html")
    timed(stages, "save_html (render + lake write)", save_html, lake, snapshot, html_key, scratch)
    record = {"day": day.isoformat(), **summary.as_record()}
    timed(stages, "record write", lake.write_bytes, record_key(DRIFT_REPORT, day), encode(record))
    return summary.as_record()


def after_day(lake, reference, day: dt.date, stages: dict[str, list[float]]) -> dict[str, Any]:
    from mlops_assets.lib.keys import DRIFT_REPORT
    from mlops_assets.lib.records import encode
    from mlops_assets.monitoring.drift import DriftThresholds, drift_of_day
    from mlops_assets.monitoring.records import record_key

    record = timed(stages, "drift_of_day", drift_of_day, lake, reference, day, DriftThresholds())
    timed(stages, "record write", lake.write_bytes, record_key(DRIFT_REPORT, day), encode(record))
    return record


def same_statistics(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Every figure of the statistics equal, every per-feature score to the last bit."""
    return all(after[k] == v for k, v in before.items())


def profile(title: str, day_of, days: list[dt.date], functions) -> None:
    """Cumulative seconds per day of the named functions over `days`, under cProfile (which inflates
    Python-heavy code most)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for day in days:
        day_of(day)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = max(ct for _, _, _, ct, _ in stats.values())
    print(f"\nprofile of the {title} path, per day, under cProfile ({len(days)} days):")
    print(f"  {'all of it':<52}{total / len(days):>8.3f} s")
    for suffix, name, label in functions:
        # the outermost of same-named functions (Report.run calls Snapshot.run)
        cumulative = max(
            (
                ct
                for (path, _, function), (_, _, _, ct, _) in stats.items()
                if path.endswith(suffix) and function == name
            ),
            default=0.0,
        )
        print(f"  {label:<52}{cumulative / len(days):>8.3f} s")


def median_table(title: str, stages: dict[str, list[float]]) -> None:
    print(title)
    for name, seconds in stages.items():
        print(f"  {name:<40}{statistics.median(seconds):>8.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", required=True, help="MLOPS_HOME with a champion and batch predictions")
    parser.add_argument("--reference-rows", type=int, default=5000)
    parser.add_argument("--max-days", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="a cProfile of the before path (3 days)")
    args = parser.parse_args()

    from mlops_assets.lib.settings import load_settings
    from mlops_assets.monitoring.drift import load_reference, render_drift_html
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
    with tempfile.TemporaryDirectory() as scratch:
        # A lake of the bench's own (copies of the inputs): the asset's records stay as they are.
        bench_lake = LocalObjectStore(root=str(Path(scratch) / "lake"))
        for key in [champion.training_set_key, *(f"predictions/batch/{d}.parquet" for d in days)]:
            bench_lake.write_bytes(key, lake.read_bytes(key))
        started = time.perf_counter()
        reference = load_reference(bench_lake, mlflow, champion, args.reference_rows)  # sample + predictions
        built = time.perf_counter() - started
        started = time.perf_counter()
        reference = load_reference(bench_lake, mlflow, champion, args.reference_rows)  # from the lake cache
        cached = time.perf_counter() - started
        before_stages: dict[str, list[float]] = {}
        after_stages: dict[str, list[float]] = {}
        before_day(bench_lake, reference.frame, days[0], Path(scratch), {})  # warm-up (imports)
        after_day(bench_lake, reference, days[0], {})
        rows = []
        for index, day in enumerate(days[1:]):
            turns = [("before", Path(scratch)), ("after", None)]
            results: dict[str, Any] = {}
            for name, _ in turns if index % 2 == 0 else reversed(turns):
                stages = before_stages if name == "before" else after_stages
                started = time.perf_counter()
                if name == "before":
                    results[name] = before_day(bench_lake, reference.frame, day, Path(scratch), stages)
                else:
                    results[name] = after_day(bench_lake, reference, day, stages)
                stages.setdefault("day, all of it", []).append(time.perf_counter() - started)
            rows.append((day, before_stages["day, all of it"][-1], after_stages["day, all of it"][-1]))
            rows[-1] += (
                same_statistics(results["before"], results["after"]),
                results["after"]["drift_share"],
            )
        started = time.perf_counter()
        _, same_as_record = render_drift_html(bench_lake, days[-1])
        rendered = time.perf_counter() - started
        if args.profile:
            profile(
                "before",
                lambda day: before_day(bench_lake, reference.frame, day, Path(scratch), {}),
                days[1:4],
                PROFILED_BEFORE,
            )
            profile("after", lambda day: after_day(bench_lake, reference, day, {}), days[1:4], PROFILED_AFTER)

    print(f"champion v{champion.version}; reference {args.reference_rows} rows; {len(rows)} days timed")
    print(f"reference sample + the champion's predictions on it: {built:.2f} s (once per champion version)")
    print(f"reference read from the lake cache, prepared: {cached:.2f} s (once per run)")
    print(f"{'day':<12}{'before s':>10}{'after s':>10}{'ratio':>9}{'same statistics':>17}{'drift share':>13}")
    for day, before, after, same, share in rows:
        print(f"{day!s:<12}{before:>10.3f}{after:>10.3f}{before / after:>8.1f}x{same!s:>17}{share:>13.3f}")
    before = statistics.median(r[1] for r in rows)
    after = statistics.median(r[2] for r in rows)
    equal = all(r[3] for r in rows)
    print(f"{'median':<12}{before:>10.3f}{after:>10.3f}{before / after:>8.1f}x{equal!s:>17}")
    median_table("before, per-day medians by stage:", before_stages)
    median_table("after, per-day medians by stage:", after_stages)
    print(
        f"Evidently's HTML of {days[-1]} on demand (mlops report html): {rendered:.2f} s, "
        f"same statistics as its record: {same_as_record}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
