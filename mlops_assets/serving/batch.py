"""Batch scoring of a day's flights by the champion (what `predictions/batch_predictions` runs).

The rows go to the lake as `predictions/batch/{day}.parquet` with the model inputs beside the predictions,
so the drift report compares what the model actually saw; each day's counts go beside them as a record,
`predictions/summary/{day}.json`, which names the materialization that wrote them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg

from mlops_assets.features.training_set import ENTITY_COLUMNS
from mlops_assets.resources.storage import ObjectStore

SCHEDULE_PREFIX = "features/flight_schedule"
PREDICTIONS_PREFIX = "predictions/batch"
# Beside, not inside, predictions/batch/: whoever lists that folder finds only the day's scored rows.
SUMMARY_PREFIX = "predictions/summary"
# As dbt's `horizon_hours` (dbt/dbt_project.yml): a prediction is made 2 h before the scheduled departure,
# and the schedule row is stamped 24 h before it.
HORIZON = dt.timedelta(hours=2)
SCHEDULE_LEAD = dt.timedelta(hours=24)


def predictions_key(day: dt.date | str) -> str:
    return f"{PREDICTIONS_PREFIX}/{day}.parquet"


def summary_key(day: dt.date | str) -> str:
    return f"{SUMMARY_PREFIX}/{day}.json"


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


CHALLENGER_PROBABILITY = "challenger_probability_late"
CHALLENGER_VERSION = "challenger_version"


def with_challenger(scored, challenger_scored, version: str):
    """The champion's rows with the challenger's probability for the same flights beside them (the
    shadow comparison reads both from one file). Both come from `score_day` over the same flights."""
    if scored["flight_id"].tolist() != challenger_scored["flight_id"].tolist():
        raise ValueError("the challenger scored other flights than the champion")
    return scored.assign(
        **{
            CHALLENGER_PROBABILITY: challenger_scored["probability_late"].to_numpy(),
            CHALLENGER_VERSION: version,
        }
    )


def day_summary(day: dt.date, frame) -> dict[str, Any]:
    summary = {
        "day": day.isoformat(),
        "flights": len(frame),
        "mean_probability": round(float(frame["probability_late"].mean()), 4) if len(frame) else None,
        "predicted_late_share": round(float(frame["decision_late"].mean()), 4) if len(frame) else None,
        "unscored": int(frame["probability_late"].isna().sum()),
    }
    if CHALLENGER_PROBABILITY in frame and len(frame):
        summary["challenger_version"] = str(frame[CHALLENGER_VERSION].iloc[0])
        summary["challenger_mean_probability"] = round(float(frame[CHALLENGER_PROBABILITY].mean()), 4)
    return summary


def day_metadata(summary: dict[str, Any], path: str) -> dict[str, Any]:
    """One day's counts, for that day's materialization (the UI charts them over the partitions)."""

    def rate(name: str) -> dg.MetadataValue:
        return dg.MetadataValue.float(float("nan") if summary[name] is None else summary[name])

    metadata = {
        "dagster/row_count": dg.MetadataValue.int(summary["flights"]),
        "unscored": dg.MetadataValue.int(summary["unscored"]),
        "mean_probability": rate("mean_probability"),
        "predicted_late_share": rate("predicted_late_share"),
        "path": dg.MetadataValue.path(path),
    }
    if "challenger_version" in summary:
        metadata["challenger_version"] = summary["challenger_version"]
        metadata["challenger_mean_probability"] = rate("challenger_mean_probability")
    return metadata
