"""`features/flight_features`: the Spark job that turns the dbt models into the Feast source tables.

For a window of local days (one partition, or a range in one run: single-run backfill policy) it reads
`marts.fct_flights` from [first day - 29 days, last day] (the lookback of the 28-day delay history) and
`staging.stg_weather` (features/inputs.py), computes the tables of flight_features.py with Spark, and
writes one Parquet file per table per day, `<lake>/features/<table>/<YYYY-MM-DD>.parquet`
(features/publish.py):

    flight_schedule, delay_stats, weather_hourly,
    delay_stats_carrier, delay_stats_origin, delay_stats_dest, delay_stats_route
"""

import datetime as dt
import time

import dagster as dg

from mlops_assets.features.flight_features import LOOKBACK_DAYS
from mlops_assets.features.inputs import WEATHER_LOOKBACK_DAYS, read_warehouse_inputs
from mlops_assets.features.publish import FEATURES_PREFIX, describe_outputs, staging_store, write_tables
from mlops_assets.lib.automation import on_new_data
from mlops_assets.lib.calendar import daily_partitions, days_between, window_bounds
from mlops_assets.lib.keys import FCT_FLIGHTS, FLIGHT_FEATURES, ML_OWNERS, STG_WEATHER
from mlops_assets.lib.settings import Settings
from mlops_assets.resources.spark import SparkResource
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.warehouse import Warehouse

ASSET_KEY = FLIGHT_FEATURES
GROUP = "features"
OWNERS = ML_OWNERS
UPSTREAM = (FCT_FLIGHTS, STG_WEATHER)


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


def build_feature_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        key=ASSET_KEY,
        deps=upstream_deps(),
        group_name=GROUP,
        owners=OWNERS,
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
