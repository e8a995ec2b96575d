"""`features/flight_features`: the Spark job that turns the dbt models into the Feast source tables.

For a window of local days (one partition, or a range in one run: single-run backfill policy) it reads
`marts.fct_flights` from [first day - 29 days, last day] (the lookback of the 28-day delay history) and
`staging.stg_weather`, computes the tables of flight_features.py with Spark, and writes one Parquet file
per table per day, `<lake>/features/<table>/<YYYY-MM-DD>.parquet`:

    flight_schedule, delay_stats, weather_hourly,
    delay_stats_carrier, delay_stats_origin, delay_stats_dest, delay_stats_route

Spark writes each table partitioned by day into a staging folder next to the tables; each day's file is
then moved into place with one rename (atomic: a reader sees the old file or the new one, never half).
With an S3 lake and an embedded Spark session (which has no S3 connector: pyspark ships no hadoop-aws
jar), the staging folder is local scratch space and each day's file is uploaded with one PUT instead.

The inputs come from the `warehouse` resource (mlops_assets/resources/warehouse.py): the DuckDB
file locally, PostgreSQL in production, both read into Arrow with the same schema on the driver and
handed to Spark, so the features do not depend on the warehouse. (Spark's own JDBC reader would need
the PostgreSQL JDBC jar, which pyspark does not ship and this platform does not download.)
"""

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.features.flight_features import LOOKBACK_DAYS
from mlops_assets.lib.automation import on_new_data
from mlops_assets.lib.calendar import daily_partitions, days_between, window_bounds
from mlops_assets.lib.keys import FCT_FLIGHTS, FLIGHT_FEATURES, STG_WEATHER
from mlops_assets.lib.settings import Settings
from mlops_assets.resources.spark import SparkResource
from mlops_assets.resources.storage import LocalObjectStore, ObjectStore
from mlops_assets.resources.warehouse import DuckDBWarehouse, Warehouse

ASSET_KEY = FLIGHT_FEATURES
GROUP = "features"
OWNER = "team:ml-platform"
UPSTREAM = (FCT_FLIGHTS, STG_WEATHER)
FEATURES_PREFIX = "features"
# Features whose null rate a person wants to see on each materialization.
KEY_FEATURES = {
    "flight_schedule": ("plane_age_years", "plane_seats"),
    "delay_stats": ("late_rate_1d", "late_rate_7d", "late_rate_28d"),
    "weather_hourly": ("wind_gust", "precip_3h", "pressure_change_3h"),
}
FLIGHT_COLUMNS = (
    "flight_id",
    "flight_date",
    "carrier",
    "origin",
    "dest",
    "distance",
    "sched_dep_local",
    "sched_dep_utc",
    "arrived_at_utc",
    "arr_delay",
    "plane_year_built",
    "plane_seats",
)
WEATHER_KEY_COLUMNS = ("origin", "weather_date", "observed_hour_utc", "available_at_utc")
WEATHER_LOOKBACK_DAYS = 1  # the 3-hour windows of the first hours of the window


def lookback(days: int) -> dg.TimeWindowPartitionMapping:
    """Day D reads upstream days D-`days`..D, so it depends on all of them: automation holds D until
    the whole window is in the warehouse (missing or in progress) and reruns D when any of them
    changes. The first days of the calendar depend on the days that exist (the window is clipped)."""
    return dg.TimeWindowPartitionMapping(start_offset=-days, allow_nonexistent_upstream_partitions=True)


def upstream_deps() -> list[dg.AssetDep]:
    """fct_flights over the delay history's lookback, stg_weather over the day before (the 3-hour
    windows of the first hours)."""
    return [
        dg.AssetDep(FCT_FLIGHTS, partition_mapping=lookback(LOOKBACK_DAYS)),
        dg.AssetDep(STG_WEATHER, partition_mapping=lookback(WEATHER_LOOKBACK_DAYS)),
    ]


DESCRIPTION = """Feature tables for the Feast repository, computed with PySpark from `fct_flights` and
`stg_weather`: one Parquet file per table per local day under `<lake>/features/<table>/<day>.parquet`.
`flight_schedule` (one row per flight; event_timestamp = scheduled departure - 24 h, the schedule being
published in advance), `delay_stats` (hourly snapshots of 1/7/28-day delay history per carrier, origin,
dest and route, counting a flight only once it has arrived; also split per entity type as
`delay_stats_<type>`), `weather_hourly` (per origin and hour, visible from the end of the hour, with
3-hour rolling windows). Every timestamp is UTC."""


def as_warehouse(warehouse: Warehouse | Path) -> Warehouse:
    """A warehouse resource; a path is the local profile's DuckDB file (as tests and scripts pass it)."""
    return warehouse if isinstance(warehouse, Warehouse) else DuckDBWarehouse(path=str(warehouse))


def read_warehouse_inputs(warehouse: Warehouse | Path, first: dt.date, last: dt.date):
    """(flights, weather) as Arrow tables from the warehouse (DuckDB or PostgreSQL, same schema)."""
    from mlops_assets.features.flight_features import WEATHER_COLUMNS, input_window

    source = as_warehouse(warehouse)
    low, high = input_window(first, last)
    weather_low = first - dt.timedelta(days=WEATHER_LOOKBACK_DAYS)
    weather_columns = [*WEATHER_KEY_COLUMNS, *WEATHER_COLUMNS.values()]
    flights = source.read_table("marts.fct_flights", FLIGHT_COLUMNS, "flight_date", low, high)
    weather = source.read_table("staging.stg_weather", weather_columns, "weather_date", weather_low, last)
    return flights, weather


def staging_store(lake: ObjectStore, spark: SparkResource, scratch: Path) -> ObjectStore:
    """Where Spark writes before the files are published: next to the tables in a local lake, or in an
    S3 lake when Spark is a cluster (Spark Connect) with its own S3 connector; an embedded session has
    none (no hadoop-aws jar ships with pyspark), so it writes to local scratch space and the files are
    uploaded through the lake."""
    if isinstance(lake, LocalObjectStore) or spark.is_remote:
        return lake
    return LocalObjectStore(root=str(scratch))


def write_tables(
    spark, tables: dict[str, Any], lake: ObjectStore, days: list[dt.date], staging: ObjectStore | None = None
) -> dict[str, list[str]]:
    """Writes the Spark tables (DataFrames with `feature_day`) as one file per day; returns the keys.

    Spark writes flight_schedule, delay_stats and weather_hourly into `staging` (default: the lake);
    the per-entity tables (`delay_stats_<type>`) are split from each day's delay_stats file (a few MB)
    with pyarrow, which saves four Spark jobs of a file per day each (about 10 s each on 2 cores for
    a year).
    """
    from mlops_assets.features.flight_features import DAY_COLUMN, TABLES

    staging = staging or lake
    staging_key = f"{FEATURES_PREFIX}/.staging-{uuid.uuid4().hex}"
    target = staging.uri(staging_key)
    if target.startswith("s3://"):
        target = "s3a://" + target.removeprefix("s3://")
    written: dict[str, list[str]] = {}
    try:
        for table in TABLES:
            tables[table].repartition(DAY_COLUMN).write.mode("overwrite").partitionBy(DAY_COLUMN).parquet(
                f"{target}/{table}"
            )
        for table in TABLES:
            written[table] = publish_days(lake, staging_key, table, days, staging)
        written.update(split_by_entity(lake, written["delay_stats"]))
    finally:
        if isinstance(staging, LocalObjectStore):
            import shutil

            shutil.rmtree(staging.uri(staging_key), ignore_errors=True)
    return written


def split_by_entity(lake: ObjectStore, keys: list[str]) -> dict[str, list[str]]:
    """`features/delay_stats_<type>/<day>.parquet` from each day's delay_stats file."""
    import io

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mlops_assets.features.flight_features import ENTITY_TYPES, STAT_COLUMNS

    written: dict[str, list[str]] = {f"delay_stats_{e}": [] for e in ENTITY_TYPES}
    for key in keys:
        stats = pq.read_table(io.BytesIO(lake.read_bytes(key)))
        for entity in ENTITY_TYPES:
            part = stats.filter(pc.equal(stats["entity_type"], entity))
            part = part.select(["entity_id", "event_timestamp", *STAT_COLUMNS]).rename_columns(
                [entity, "event_timestamp", *STAT_COLUMNS]
            )
            target = f"{FEATURES_PREFIX}/delay_stats_{entity}/{key.rsplit('/', 1)[-1]}"
            buffer = io.BytesIO()
            pq.write_table(part, buffer)
            lake.write_bytes(target, buffer.getvalue())
            written[f"delay_stats_{entity}"].append(target)
    return written


def publish_days(
    lake: ObjectStore, staging_key: str, table: str, days: list[dt.date], staging: ObjectStore | None = None
) -> list[str]:
    """Moves each day's staged file (in `staging`, default the lake) to `features/<table>/<day>.parquet`
    (an empty file for a day without rows, so that every day of the window has its file)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_assets.features.flight_features import DAY_COLUMN

    staging = staging or lake
    staged: dict[str, list[str]] = {}
    for obj in staging.list_objects(f"{staging_key}/{table}/"):
        folder = obj.key.rsplit("/", 2)[-2]
        if folder.startswith(f"{DAY_COLUMN}=") and obj.key.endswith(".parquet"):
            staged.setdefault(folder.split("=", 1)[1], []).append(obj.key)
    schema = None
    if staged:
        first_key = next(iter(staged.values()))[0]
        schema = pq.read_schema(io.BytesIO(staging.read_bytes(first_key)))
    keys = []
    for day in days:
        target = f"{FEATURES_PREFIX}/{table}/{day.isoformat()}.parquet"
        parts = staged.get(day.isoformat(), [])
        if len(parts) == 1 and staging is lake and isinstance(lake, LocalObjectStore):
            Path(lake.uri(target)).parent.mkdir(parents=True, exist_ok=True)
            Path(lake.uri(parts[0])).replace(lake.uri(target))  # atomic rename, same file system
        elif len(parts) == 1:
            lake.write_bytes(target, staging.read_bytes(parts[0]))  # Spark's file as is, one PUT
        elif schema is not None:
            frames = [pq.read_table(io.BytesIO(staging.read_bytes(k))) for k in parts]
            merged = pa.concat_tables(frames) if frames else schema.empty_table()
            buffer = io.BytesIO()
            pq.write_table(merged, buffer)
            lake.write_bytes(target, buffer.getvalue())  # atomic in every ObjectStore
        else:
            continue
        keys.append(target)
    return keys


def describe_outputs(lake: ObjectStore, written: dict[str, list[str]]) -> tuple[dict[str, Any], dict]:
    """(range-wide, day -> that day's) metadata, read from the written files: each day its own row
    counts and null rates of key features (the UI charts them over the partitions); a preview of the
    first day's rows for the run."""
    import io

    import pyarrow.parquet as pq

    by_day: dict[str, dict[str, Any]] = {}
    previews = []
    for table, keys in written.items():
        columns = KEY_FEATURES.get(table, ())
        for key in keys:
            frame = pq.read_table(io.BytesIO(lake.read_bytes(key)))
            day = by_day.setdefault(key.rsplit("/", 1)[-1].removesuffix(".parquet"), {"null_lines": []})
            day[f"rows/{table}"] = dg.MetadataValue.int(frame.num_rows)
            for column in columns:
                rate = frame[column].null_count / frame.num_rows if frame.num_rows else 0.0
                day["null_lines"].append(f"| {table} | {column} | {rate:.4f} |")
                day[f"null_rate/{table}/{column}"] = dg.MetadataValue.float(round(rate, 6))
            if columns and frame.num_rows and key == keys[0]:
                preview = frame.slice(0, 5).to_pandas().to_markdown(index=False)
                previews.append(f"**{table}** ({key})\n\n{preview}")
    header = ["| table | feature | null rate |", "| --- | --- | ---: |"]
    for metadata in by_day.values():
        metadata["null_rates"] = dg.MetadataValue.md("\n".join(header + metadata.pop("null_lines")))
        metadata["dagster/row_count"] = metadata.get("rows/flight_schedule", dg.MetadataValue.int(0))
    return {"preview": dg.MetadataValue.md("\n\n".join(previews))}, by_day


def build_feature_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=ASSET_KEY,
        deps=upstream_deps(),
        group_name=GROUP,
        owners=[OWNER],
        kinds={"spark", "parquet"},
        description=DESCRIPTION,
        partitions_def=daily_partitions(),
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=on_new_data(),
        # Days landing together would start a JVM each; the pool runs them one after the other.
        pool="spark",
    )
    def flight_features(
        context: dg.AssetExecutionContext, spark: SparkResource, lake: ObjectStore, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        from mlops_assets.features.flight_features import build_features, input_window, snapshot_hours

        window = context.partition_time_window
        first, last = window_bounds(window)
        days = days_between(first, last)
        started = time.perf_counter()
        flights_arrow, weather_arrow = read_warehouse_inputs(warehouse, first, last)
        context.log.info(
            f"read {flights_arrow.num_rows} flights and {weather_arrow.num_rows} weather rows "
            f"for {first}..{last} from {warehouse.describe()} in {time.perf_counter() - started:.1f}s"
        )
        session = spark.get_session()
        flights = session.createDataFrame(flights_arrow)
        weather = session.createDataFrame(weather_arrow)
        tables = build_features(session, flights, weather, first, last)
        staging = staging_store(lake, spark, settings.home / "scratch" / "features")
        written = write_tables(session, tables, lake, days, staging)
        elapsed = time.perf_counter() - started
        context.log.info(f"wrote {sum(map(len, written.values()))} files in {elapsed:.1f}s")
        low, high = input_window(first, last)
        metadata, by_day = describe_outputs(lake, written)
        for day, day_metadata in by_day.items():
            context.add_asset_metadata(day_metadata, partition_key=day)
        hours = snapshot_hours(first, last)
        # Range-wide: what the run read and wrote; each day's counts are its own (describe_outputs).
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "window": f"{first}..{last} ({len(days)} local days)",
                "input_flight_dates": f"{low}..{high}",
                "snapshot_hours_utc": (
                    f"{dt.datetime.fromtimestamp(hours[0][1], dt.UTC):%Y-%m-%dT%H:%MZ}.."
                    f"{dt.datetime.fromtimestamp(hours[-1][1], dt.UTC):%Y-%m-%dT%H:%MZ} ({len(hours)})"
                ),
                "input_rows": {"fct_flights": flights_arrow.num_rows, "stg_weather": weather_arrow.num_rows},
                "files_written": sum(map(len, written.values())),
                "path": dg.MetadataValue.path(lake.uri(FEATURES_PREFIX)),
                "spark": spark.describe(),
                "warehouse": warehouse.describe(),
                "seconds": round(elapsed, 2),
            }
        )

    return [flight_features]
