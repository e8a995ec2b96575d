"""The Feast part of the features stage: registry, online store and point-in-time training sets.

- `features/feature_views`: `feast apply` of feature_repo/ (entities, views, the services `flight_delay_v1`
  and `flight_delay_v2`).
- `features/online_store`: daily; Feast materialization of the partition window into the online store.
- `features/training_set`: a configured window of fct_flights, joined point-in-time with the feature
  service's features (Feast `get_historical_features`), written to the lake as Parquet.
"""

import datetime as dt
import json
import time

import dagster as dg
from pydantic import Field

from mlops_assets.features.online import MATERIALIZE_LOOKBACK, entities_by_day, local_days_utc_span
from mlops_assets.features.training_set import (
    TRAINING_SET_POINTER,
    TrainingSetIdentity,
    build_training_set,
    canonical_hash,
    content_addressed_key,
    entity_frame,
)
from mlops_assets.lib.automation import on_new_data
from mlops_assets.lib.calendar import daily_partitions
from mlops_assets.lib.keys import FCT_FLIGHTS, FEATURE_VIEWS, FLIGHT_FEATURES, ML_OWNERS
from mlops_assets.resources.feature_store import FeastResource
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.warehouse import Warehouse

GROUP = "features"
OWNERS = ML_OWNERS


@dg.asset(
    key=FEATURE_VIEWS,
    deps=[FLIGHT_FEATURES],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"feast", "python"},
    description=(
        "`feast apply` of feature_repo/: entities flight, carrier, origin, dest, route; file sources over "
        "the Parquet folders of features/flight_features; feature views flight_schedule (TTL 2 d), "
        "`delay_stats_<carrier|origin|dest|route>` (TTL 2 h) and weather_hourly (TTL 3 h); and the feature "
        "services flight_delay_v1 and flight_delay_v2 (v1 plus wind direction and 3-hour weather changes) in "
        "the profile's registry."
    ),
    automation_condition=dg.AutomationCondition.eager(),
    # `feast apply` writes the online store's tables too: with a materialization running, SQLite said
    # "database is locked" (seen when a four-month landing ran days 12-31 and 08-29..12-30 side by side).
    pool="online_store",
)
def feature_views(context: dg.AssetExecutionContext, feast: FeastResource) -> dg.MaterializeResult:
    applied = feast.apply()
    config = feast.rendered_config()
    return dg.MaterializeResult(
        metadata={
            "project": feast.project,
            "entities": applied["entities"],
            "feature_views": applied["feature_views"],
            "feature_service": ", ".join(applied["feature_services"]),
            "features": dg.MetadataValue.int(len(applied["features"])),
            "feature_refs": dg.MetadataValue.json(applied["features"]),
            "online_store": config["online_store"]["type"],
            "registry": str(config["registry"]["path"]),
            "source_root": feast.feature_source_root(),
        }
    )


@dg.asset(
    key=["features", "online_store"],
    deps=[FEATURE_VIEWS, FLIGHT_FEATURES],
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    owners=OWNERS,
    kinds={"feast", "sqlite", "redis"},
    description=(
        "Feast materialization of the partition window (the UTC span of its New York days, plus the day "
        "before for schedule rows stamped 24 h ahead, and on to the newest day already online) into the "
        "online store: SQLite locally, Redis in production. The latest row per entity and view is "
        "written; each day's materialization counts the entities of its own window."
    ),
    # A re-applied registry must not re-materialize every past day.
    automation_condition=on_new_data(ignore_updates_of=[FEATURE_VIEWS]),
    # One writer at a time: two days materializing at once lock the SQLite online store.
    pool="online_store",
)
def online_store(context: dg.AssetExecutionContext, feast: FeastResource) -> dg.MaterializeResult:
    first, last = context.partition_key_range.start, context.partition_key_range.end
    # Up to the newest day already online: Feast's SQLite store overwrites whatever it holds, so a run
    # of earlier days (a late day's recompute) would otherwise put older rows over newer ones.
    newest = max(context.instance.get_materialized_partitions(context.asset_key), default=last)
    span_start, span_end = local_days_utc_span(first, max(last, newest))
    start = span_start - MATERIALIZE_LOOKBACK
    # Feast's window is inclusive at both ends; stop just before the next partition's first instant.
    end = span_end - dt.timedelta(microseconds=1)
    by_day = entities_by_day(feast, context.partition_keys)
    result = feast.materialize(start, end)
    context.log.info(f"materialized {first}..{last} ({start}..{end}) in {result['seconds']:.2f} s")
    for day, counts in by_day.items():
        # Each day its own counts: the entities of its window (Feast writes the range's latest rows).
        context.add_asset_metadata(
            {
                "dagster/row_count": dg.MetadataValue.int(sum(counts.values())),
                "entities_written": dg.MetadataValue.int(sum(counts.values())),
                "entities_by_view": dg.MetadataValue.json(counts),
            },
            partition_key=day,
        )
    return dg.MaterializeResult(
        metadata={
            "window_start_utc": start.isoformat(),
            "window_end_utc": end.isoformat(),
            "partitions": f"{first}..{last}",
            "online_through": max(last, newest),
            "duration_s": dg.MetadataValue.float(round(result["seconds"], 3)),
            "online_store": feast.rendered_config()["online_store"]["type"],
        }
    )


class TrainingSetConfig(dg.Config):
    start_date: str = Field(default="2013-01-01", description="First local flight_date (inclusive).")
    end_date: str = Field(default="2013-03-31", description="Last local flight_date (inclusive).")
    feature_service: str = Field(default="flight_delay_v2", description="Feast feature service to join.")


@dg.asset(
    key=["features", "training_set"],
    deps=[FCT_FLIGHTS, FEATURE_VIEWS],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"feast", "parquet", "duckdb"},
    description=(
        "Training set of a configured window: labelled flights from fct_flights (prediction time = "
        "scheduled departure - 2 h; cancelled/diverted excluded) joined point-in-time with the features "
        "of a Feast feature service (default flight_delay_v2). Feast takes, per view, the latest row at or "
        "before the prediction time and within the view's TTL, so no feature comes from the future. "
        "Written once to the lake at a content-addressed key, `features/training_set/<start>_<end>_<hash>"
        ".parquet`; the materialization's metadata (training_set/key, sha256, window) is the identity "
        "the training graph carries from tuning to registration. features/training_set/latest.json names "
        "the newest set for people and tools."
    ),
)
def training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetConfig,
    feast: FeastResource,
    lake: ObjectStore,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    entities = entity_frame(warehouse, config.start_date, config.end_date)
    if entities.empty:
        raise dg.Failure(f"fct_flights has no labelled flights in {config.start_date}..{config.end_date}")
    frame, refs = build_training_set(feast, entities, config.feature_service)
    content_hash = canonical_hash(frame)
    key = content_addressed_key(config.start_date, config.end_date, content_hash)
    # A key always holds the content its name says, so a set a model learned from is never replaced.
    if not lake.exists(key):
        lake.write_parquet(key, frame)
    identity = TrainingSetIdentity(
        key, content_hash, (config.start_date, config.end_date), config.feature_service
    )
    pointer = {
        "key": key,
        "window": [config.start_date, config.end_date],
        "feature_service": config.feature_service,
        "features": refs,
        "rows": len(frame),
        "content_sha256": content_hash,
        "dagster_run_id": context.run.run_id,
    }
    # The training graph takes its set from this materialization's metadata; the pointer is for people,
    # tools, and a chain started where the Dagster instance holds no materialization of this asset.
    lake.write_bytes(TRAINING_SET_POINTER, json.dumps(pointer, indent=1).encode())
    null_rates = {c: round(float(frame[c].isna().mean()), 4) for c in refs}
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(lake.uri(key)),
            "window": f"{config.start_date}..{config.end_date}",
            "feature_service": config.feature_service,
            "features": dg.MetadataValue.json(refs),
            "feature_count": dg.MetadataValue.int(len(refs)),
            "dagster/row_count": dg.MetadataValue.int(len(frame)),
            "label_rate": dg.MetadataValue.float(round(float(frame["label_late"].mean()), 4)),
            "null_rates": dg.MetadataValue.json(null_rates),
            "max_null_rate": dg.MetadataValue.float(max(null_rates.values(), default=0.0)),
            "content_sha256": content_hash,
            **identity.metadata(),
            "duration_s": dg.MetadataValue.float(round(time.perf_counter() - started, 2)),
        }
    )


def build_feast_assets() -> list[dg.AssetsDefinition]:
    return [feature_views, online_store, training_set]
