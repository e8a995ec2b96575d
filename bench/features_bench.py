"""Features benchmark: the Spark feature job for all of 2013, and Spark vs DuckDB as the data grows.

    .venv/bin/python bench/features_bench.py                    # scales 1, 10, 100 (100x: ~8 min on 2 cores)
    .venv/bin/python bench/features_bench.py --scales 1,10      # without the 34M-row run
    .venv/bin/python bench/features_bench.py --quick            # smoke run: 1x, January only

1. Data: the real pipeline for all of 2013 (replay into the landing zone, raw assets, dbt) into
   --home (default /tmp/mlops-features-bench; reused when already built, about 1.5 min otherwise).
   `marts.fct_flights` and `staging.stg_weather` are exported to Parquet once.
2. Scale k: fct_flights replicated k times, replica r > 0 with new flight_ids and carrier `<carrier>_r`
   (so the carrier and route... aggregations grow: k x the flights, k x the carriers), written as
   Parquet first; weather stays 1x.
3. For each scale, Spark (embedded local[2], spark.read.parquet) and DuckDB (threads=2, read_parquet)
   each compute every feature table for the window (flight_features.py / duckdb_features.py) and write
   it as Parquet partitioned by day, each in a fresh child process. The parent samples the child's
   process tree (Python + the Spark JVM) with psutil for peak RSS and CPU time; wall time includes
   the JVM start for Spark. rows/s and cost per row are per input flight row.

Prints one table at the end and writes the figures to bench/results/features.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "features.json"
YEAR_START, YEAR_END = dt.date(2013, 1, 1), dt.date(2013, 12, 31)
DEFAULT_HOME = Path(tempfile.gettempdir()) / "mlops-features-bench"
ENGINES = ("spark", "duckdb")


def log(message: str) -> None:
    print(f"[features-bench] {message}", flush=True)


def prepare_year(home: Path) -> Path:
    """The real pipeline for all of 2013 into `home` (replay, raw assets, dbt); reused when present."""
    warehouse = home / "warehouse.duckdb"
    marker = home / ".features-bench-ready"
    if marker.exists() and warehouse.exists():
        return warehouse
    os.environ["MLOPS_HOME"] = str(home)
    os.environ["DBT_TARGET_PATH"] = str(home / "dbt-target")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    sys.path.insert(0, str(REPO_ROOT))
    from bench.warehouse import materialize_window
    from mlops_assets.replay import replay
    from mlops_assets.resources.storage import LocalObjectStore

    landing = LocalObjectStore(root=str(home / "landing"))
    lake = LocalObjectStore(root=str(home / "lake"))
    started = time.perf_counter()
    replay(landing, YEAR_START, YEAR_END)
    log(f"replayed 2013 in {time.perf_counter() - started:.0f}s")
    materialize_window(landing, lake, YEAR_START, YEAR_END)
    log(f"raw assets and dbt models of 2013 in {time.perf_counter() - started:.0f}s")
    marker.write_text("ok\n")
    return warehouse


def export_inputs(warehouse: Path, data: Path, scales: list[int]) -> dict[int, tuple[Path, int]]:
    """fct_flights x k (Parquet) per scale, and stg_weather once; returns {k: (flights path, rows)}."""
    import duckdb

    sys.path.insert(0, str(REPO_ROOT))
    from mlops_assets.features.flight_features import WEATHER_COLUMNS
    from mlops_assets.features.inputs import FLIGHT_COLUMNS

    data.mkdir(parents=True, exist_ok=True)
    paths = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'; set threads = 2")
        weather = data / "weather.parquet"
        if not weather.exists():
            columns = ", ".join(WEATHER_COLUMNS.values())
            con.execute(
                "copy (select origin, weather_date, observed_hour_utc, available_at_utc, "
                f"{columns} from staging.stg_weather) to '{weather}' (format parquet)"
            )
        for k in scales:
            path = data / f"flights_{k}x.parquet"
            if not path.exists():
                started = time.perf_counter()
                others = [c for c in FLIGHT_COLUMNS if c not in ("flight_id", "carrier")]
                con.execute(
                    "copy (select "
                    "case when r = 0 then flight_id else flight_id || '#' || r end as flight_id, "
                    "case when r = 0 then carrier else carrier || '_' || r end as carrier, "
                    f"{', '.join(others)} from marts.fct_flights cross join range({k}) as t(r)) "
                    f"to '{path}' (format parquet, row_group_size 1000000)"
                )
                log(f"wrote {path.name} in {time.perf_counter() - started:.1f}s")
            (rows,) = con.execute(f"select count(*) from read_parquet('{path}')").fetchone()
            paths[k] = (path, rows)
    return paths


def child(
    engine: str, flights: Path, weather: Path, out: Path, first: dt.date, last: dt.date, scale: int
) -> None:
    """One engine, one scale: compute and write every table; prints its own timings as JSON."""
    sys.path.insert(0, str(REPO_ROOT))
    started = time.perf_counter()
    if engine == "spark":
        from mlops_assets.features.flight_features import DAY_COLUMN, build_features
        from mlops_assets.resources.spark import SparkResource

        memory = {1: "2g", 10: "4g"}.get(scale, "8g")
        resource = SparkResource(
            master="local[2]", shuffle_partitions=4 if scale <= 1 else 16, driver_memory=memory
        )
        session = resource.get_session()
        ready = time.perf_counter()
        frames = build_features(
            session, session.read.parquet(str(flights)), session.read.parquet(str(weather)), first, last
        )
        tables = ["flight_schedule", "delay_stats", "weather_hourly"]
        for table in tables:  # as the asset writes them, before its per-day renames
            frames[table].repartition(DAY_COLUMN).write.mode("overwrite").partitionBy(DAY_COLUMN).parquet(
                str(out / table)
            )
        counts = {t: session.read.parquet(str(out / t)).count() for t in tables}
    else:
        import duckdb

        from mlops_assets.features.duckdb_features import write_features

        con = duckdb.connect()
        con.execute(f"set TimeZone = 'UTC'; set threads = 2; set temp_directory = '{out}/.duckdb_tmp'")
        con.execute(f"create view flights as select * from read_parquet('{flights}')")
        con.execute(f"create view weather as select * from read_parquet('{weather}')")
        ready = time.perf_counter()
        write_features(con, first, last, out, entity_tables=False)
        tables = [p.name for p in out.iterdir() if not p.name.startswith(".")]
        counts = {
            t: con.execute(f"select count(*) from read_parquet('{out / t}/*/*.parquet')").fetchone()[0]
            for t in tables
        }
    done = time.perf_counter()
    print(
        "RESULT " + json.dumps({"startup_s": ready - started, "compute_s": done - ready, "rows_out": counts})
    )


def run_child(
    engine: str, flights: Path, weather: Path, first: dt.date, last: dt.date, scale: int, work: Path
):
    """Runs child() in a fresh process; samples its process tree for peak RSS and CPU time."""
    import psutil

    out = work / f"out-{engine}-{scale}x"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", engine, "--flights", str(flights),
        "--weather", str(weather), "--out", str(out), "--start", first.isoformat(), "--end", last.isoformat(),
        "--scales", str(scale),
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(process.pid)
    peak, cpu = 0, {}
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        rss = 0
        for proc in tree:
            try:
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu[proc.pid] = times.user + times.system
            except psutil.Error:
                pass
        peak = max(peak, rss)
        time.sleep(0.1)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{engine} {scale}x failed ({process.returncode}):\n{stderr[-4000:]}")
    result = json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT "))[7:])
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "peak_rss_gb": peak / 2**30, "cpu_s": sum(cpu.values()), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", default="1,10,100", help="comma-separated replication factors")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1x, January only")
    parser.add_argument(
        "--home", type=Path, default=DEFAULT_HOME, help="MLOPS_HOME holding 2013 (built if absent)"
    )
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--start", default=YEAR_START.isoformat())
    parser.add_argument("--end", default=YEAR_END.isoformat())
    parser.add_argument("--results", type=Path, default=RESULTS_FILE)
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--flights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--weather", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    first, last = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    if args.child:
        child(args.child, args.flights, args.weather, args.out, first, last, int(args.scales))
        return 0
    scales = [1] if args.quick else [int(s) for s in args.scales.split(",")]
    if args.quick:
        last = dt.date(2013, 1, 31)
    engines = args.engines.split(",")
    warehouse = prepare_year(args.home.resolve())
    inputs = export_inputs(warehouse, args.home / "bench-data", scales)
    weather = args.home / "bench-data" / "weather.parquet"
    rows = []
    with tempfile.TemporaryDirectory(prefix="features-bench-", dir=args.home) as work:
        for scale in scales:
            path, n = inputs[scale]
            for engine in engines:
                log(f"{engine} {scale}x ({n:,} flight rows, {first}..{last}) ...")
                figures = run_child(engine, path, weather, first, last, scale, Path(work))
                rows.append({"engine": engine, "scale": scale, "flight_rows": n, **figures})
                log(
                    f"{engine} {scale}x: {figures['wall_s']:.1f}s wall, "
                    f"peak {figures['peak_rss_gb']:.2f} GiB, "
                    f"{sum(figures['rows_out'].values()):,} rows out"
                )
    header = (
        f"{'engine':<7} {'scale':>5} {'flight rows':>12} {'wall s':>8} {'startup s':>9} {'compute s':>9} "
        f"{'rows/s':>10} {'us/row':>7} {'cpu-us/row':>10} {'peak GiB':>8} {'rows out':>11}"
    )
    print(f"\nFeatures {first}..{last} on {os.cpu_count()} cores (wall includes process and JVM start)")
    print(header)
    print("-" * len(header))
    for r in rows:
        out = sum(r["rows_out"].values())
        print(
            f"{r['engine']:<7} {r['scale']:>4}x {r['flight_rows']:>12,} {r['wall_s']:>8.1f} "
            f"{r['startup_s']:>9.1f} "
            f"{r['compute_s']:>9.1f} {r['flight_rows'] / r['wall_s']:>10,.0f} "
            f"{1e6 * r['wall_s'] / r['flight_rows']:>7.1f} {1e6 * r['cpu_s'] / r['flight_rows']:>10.1f} "
            f"{r['peak_rss_gb']:>8.2f} {out:>11,}"
        )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    environment = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0],
    }
    args.results.write_text(
        json.dumps({"environment": environment, "window": [str(first), str(last)], "runs": rows}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
