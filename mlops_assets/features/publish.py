"""Publishing the flight-features job's Spark tables: one Parquet file per table per local day,
`<lake>/features/<table>/<YYYY-MM-DD>.parquet`, and the metadata read back from them.

Spark writes each table partitioned by day into a staging folder next to the tables; each day's file is
then moved into place with one rename (atomic: a reader sees the old file or the new one, never half).
With an S3 lake and an embedded Spark session (which has no S3 connector: pyspark ships no hadoop-aws
jar), the staging folder is local scratch space and each day's file is uploaded with one PUT instead; a
Spark cluster without an S3 connector does the same through a folder it shares with the step
(`SparkResource.staging_dir`).
"""

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.resources.spark import SparkResource
from mlops_assets.resources.storage import LocalObjectStore, ObjectStore

FEATURES_PREFIX = "features"
# Features whose null rate a person wants to see on each materialization.
KEY_FEATURES = {
    "flight_schedule": ("plane_age_years", "plane_seats"),
    "delay_stats": ("late_rate_1d", "late_rate_7d", "late_rate_28d"),
    "weather_hourly": ("wind_gust", "precip_3h", "pressure_change_3h"),
}


def staging_store(lake: ObjectStore, spark: SparkResource, scratch: Path) -> ObjectStore:
    """Where Spark writes before the files are published: next to the tables in a local lake, or in an
    S3 lake when Spark is a cluster (Spark Connect) with its own S3 connector; an embedded session has
    none (no hadoop-aws jar ships with pyspark), so it writes to local scratch space and the files are
    uploaded through the lake. A cluster without an S3 connector writes to `spark.staging_dir`, a folder
    its executors share with the step, and the files are uploaded from there."""
    if isinstance(lake, LocalObjectStore):
        return lake
    if spark.is_remote:
        return LocalObjectStore(root=spark.staging_dir) if spark.staging_dir else lake
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
