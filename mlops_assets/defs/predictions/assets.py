"""The serving stage's batch side: every flight of a day scored by the champion.

predictions/batch_predictions  daily; the day's scheduled flights (from the Feast schedule view's files),
                               their features joined point-in-time by Feast at each flight's prediction
                               time (exactly as the training set was), scored by the `champion`; each row
                               keeps the model version and decision threshold that produced it.

The rows are written to the lake as `predictions/batch/<day>.parquet` with the model inputs beside the
predictions, so the drift report compares what the model actually saw.
"""

import datetime as dt
import time
from typing import Any

import dagster as dg

from mlops_assets.lib.automation import on_new_data
from mlops_assets.lib.calendar import daily_partitions, window_days
from mlops_assets.lib.keys import BATCH_PREDICTIONS, FEATURE_VIEWS, FLIGHT_FEATURES, REGISTERED
from mlops_assets.resources.feature_store import FeastResource
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource

GROUP = "serving"
OWNERS = ["team:ml-platform"]
SCHEDULE_PREFIX = "features/flight_schedule"
PREDICTIONS_PREFIX = "predictions/batch"
# As dbt's `horizon_hours` (dbt/dbt_project.yml): a prediction is made 2 h before the scheduled departure,
# and the schedule row is stamped 24 h before it.
HORIZON = dt.timedelta(hours=2)
SCHEDULE_LEAD = dt.timedelta(hours=24)
ENTITY_COLUMNS = ["flight_id", "carrier", "origin", "dest", "route"]
COMPLETE = "every_flight_scored"


def predictions_key(day: dt.date | str) -> str:
    return f"{PREDICTIONS_PREFIX}/{day}.parquet"


def scheduled_flights(lake: ObjectStore, day: dt.date):
    """The day's flights with their prediction time, from the schedule view's file of that day."""
    import pandas as pd

    key = f"{SCHEDULE_PREFIX}/{day}.parquet"
    if not lake.exists(key):
        raise dg.Failure(f"{lake.uri(key)} does not exist: materialize features/flight_features for {day}")
    schedule = lake.read_parquet(key)[[*ENTITY_COLUMNS, "event_timestamp"]]
    sched_dep = pd.to_datetime(schedule["event_timestamp"], utc=True) + SCHEDULE_LEAD
    return schedule.assign(sched_dep_utc=sched_dep, event_timestamp=sched_dep - HORIZON)


def score_day(flights, features, champion, model) -> Any:
    """Model inputs, probability, decision and the model identity for each flight."""
    import pandas as pd

    from mlops_assets.ml.data import categorical_columns, numeric_columns
    from mlops_assets.training.data import model_input_frame

    joined = flights.merge(
        features.drop(columns=[c for c in ENTITY_COLUMNS if c != "flight_id"], errors="ignore"),
        on=["flight_id", "event_timestamp"],
        how="left",
        validate="one_to_one",
    )
    inputs = model_input_frame(joined, categorical_columns(joined), numeric_columns(joined))
    probability = model.predict(inputs).to_numpy() if len(inputs) else []
    scored = joined[[*ENTITY_COLUMNS, "sched_dep_utc"]].assign(
        prediction_time_utc=joined["event_timestamp"],
        probability_late=pd.Series(probability, index=joined.index, dtype="float64"),
    )
    scored["decision_late"] = scored["probability_late"] >= champion.decision_threshold
    scored["decision_threshold"] = champion.decision_threshold
    scored["model_version"] = champion.version
    scored["model_uri"] = champion.model_uri
    scored["scored_at_utc"] = pd.Timestamp.now(tz="UTC")
    feature_inputs = inputs.drop(columns=[c for c in ("carrier", "origin", "dest") if c in inputs])
    return pd.concat([scored, feature_inputs], axis=1)


def day_summary(day: dt.date, frame) -> dict[str, Any]:
    return {
        "day": day.isoformat(),
        "flights": len(frame),
        "mean_probability": round(float(frame["probability_late"].mean()), 4) if len(frame) else None,
        "predicted_late_share": round(float(frame["decision_late"].mean()), 4) if len(frame) else None,
        "unscored": int(frame["probability_late"].isna().sum()),
    }


def day_metadata(summary: dict[str, Any], path: str) -> dict[str, Any]:
    """One day's counts, for that day's materialization (the UI charts them over the partitions)."""

    def rate(name: str) -> dg.MetadataValue:
        return dg.MetadataValue.float(float("nan") if summary[name] is None else summary[name])

    return {
        "dagster/row_count": dg.MetadataValue.int(summary["flights"]),
        "unscored": dg.MetadataValue.int(summary["unscored"]),
        "mean_probability": rate("mean_probability"),
        "predicted_late_share": rate("predicted_late_share"),
        "path": dg.MetadataValue.path(path),
    }


@dg.asset(
    key=BATCH_PREDICTIONS,
    deps=[FLIGHT_FEATURES, FEATURE_VIEWS, REGISTERED],
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    owners=OWNERS,
    kinds={"feast", "mlflow", "pytorch", "parquet"},
    # History is not rewritten: a new champion scores the days that come after it, not the past.
    automation_condition=on_new_data(ignore_updates_of=[REGISTERED, FEATURE_VIEWS]),
    check_specs=[
        dg.AssetCheckSpec(
            COMPLETE,
            asset=BATCH_PREDICTIONS,
            blocking=True,
            description="Every scheduled flight of the day got a probability from exactly one model version.",
        )
    ],
    description=(
        "Every scheduled flight of the day scored by the `champion` of the MLflow registry. Its features are "
        "Feast's point-in-time join at the flight's prediction time (scheduled departure - 2 h), the same "
        "join that built the training set, so batch scores have no training/serving skew. Each row keeps "
        "the model version, its decision threshold and the model inputs: predictions/batch/<day>.parquet."
    ),
)
def batch_predictions(
    context: dg.AssetExecutionContext, feast: FeastResource, mlflow: MlflowResource, lake: ObjectStore
) -> dg.MaterializeResult:
    import mlflow as mlflow_api
    import pandas as pd

    from mlops_assets.training.registry import champion_info

    started = time.perf_counter()
    window = context.partition_time_window
    days = window_days(window)
    champion = champion_info(mlflow.client(), mlflow.model_name)
    if champion is None:
        raise dg.Failure(f"{mlflow.model_name} has no champion: materialize models/registered_model first")
    model = mlflow_api.pyfunc.load_model(champion.model_uri)
    service = mlflow.client().get_run(champion.run_id).data.tags.get("feature_service", "flight_delay_v1")
    flights = pd.concat([scheduled_flights(lake, day).assign(_day=day) for day in days], ignore_index=True)
    entity_df = flights[[*ENTITY_COLUMNS, "event_timestamp"]]
    features = feast.historical_features(entity_df, service, chunk_days=7) if len(flights) else entity_df
    summaries = []
    for day, part in flights.groupby("_day", sort=True):
        scored = score_day(part.drop(columns="_day"), features, champion, model)
        lake.write_parquet(predictions_key(day), scored.reset_index(drop=True))
        summaries.append(day_summary(day, scored))
        context.add_asset_metadata(
            day_metadata(summaries[-1], lake.uri(predictions_key(day))), partition_key=day.isoformat()
        )
    for day in set(days) - set(flights["_day"]):
        context.add_asset_metadata({"dagster/row_count": 0}, partition_key=day.isoformat())  # no flights
    unscored = int(sum(summary["unscored"] for summary in summaries))
    elapsed = time.perf_counter() - started
    context.log.info(f"scored {len(flights)} flights of {len(days)} day(s) with v{champion.version}")
    table = pd.DataFrame(summaries)
    return dg.MaterializeResult(
        # Range-wide: one champion scores the whole run; each day's counts are its own (day_metadata).
        metadata={
            "model_version": champion.version,
            "model_uri": champion.model_uri,
            "decision_threshold": dg.MetadataValue.float(round(champion.decision_threshold, 4)),
            "feature_service": service,
            "by_day": dg.MetadataValue.md(table.to_markdown(index=False)) if len(table) else "no flights",
            "seconds": dg.MetadataValue.float(round(elapsed, 2)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=COMPLETE,
                passed=unscored == 0 and len(flights) > 0,
                metadata={"flights": len(flights), "unscored": unscored, "model_version": champion.version},
            )
        ],
    )


def build_prediction_assets() -> list[dg.AssetsDefinition]:
    return [batch_predictions]
