"""Drift of a day: the day's model inputs and predictions against the champion's training data
(Evidently's DataDriftPreset plus the drift of the predicted probability)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.lib.keys import DRIFT_REPORT
from mlops_assets.monitoring.records import link, read_predictions, record_key, save_html
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource

REFERENCE_PREFIX = "monitoring/reference"
# Constant within a day by construction: a day's batch against weeks of reference always "drifts" on
# them, so they are left out of the drift share (the season shows in weather and delay features).
WITHIN_DAY_CONSTANT = ("flight_schedule__day_of_week", "flight_schedule__month")


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted; the drift report's config explains each and defaults to these."""

    numeric_threshold: float = 1.0  # normed Wasserstein distance
    categorical_threshold: float = 0.2  # Jensen-Shannon distance


def require_champion(mlflow: MlflowResource):
    from mlops_assets.training.registry import champion_info

    champion = champion_info(mlflow.client(), mlflow.model_name)
    if champion is None:
        raise dg.Failure(f"{mlflow.model_name} has no champion: there is nothing to monitor yet")
    return champion


def reference_frame(lake: ObjectStore, mlflow: MlflowResource, champion, rows: int, seed: int = 0):
    """A seeded sample of the champion's training set with the champion's own predictions on it,
    cached per version in the lake (the same reference for every day the version serves)."""
    import mlflow as mlflow_api

    from mlops_assets.ml.data import categorical_columns, numeric_columns
    from mlops_assets.training.data import model_input_frame

    key = f"{REFERENCE_PREFIX}/v{champion.version}_{rows}.parquet"
    if lake.exists(key):
        return lake.read_parquet(key)
    if not champion.training_set_key or not lake.exists(champion.training_set_key):
        raise dg.Failure(
            f"champion v{champion.version}'s training set ({champion.training_set_key}) is not in the lake"
        )
    frame = lake.read_parquet(champion.training_set_key)
    sample = frame.sample(n=min(rows, len(frame)), random_state=seed).sort_index()
    inputs = model_input_frame(sample, categorical_columns(sample), numeric_columns(sample))
    mlflow.activate()
    probability = mlflow_api.pyfunc.load_model(champion.model_uri).predict(inputs).to_numpy()
    reference = inputs.assign(probability_late=probability).reset_index(drop=True)
    lake.write_parquet(key, reference)
    return reference


def drift_of_day(
    lake: ObjectStore, reference, day: dt.date, scratch: Path, thresholds: DriftThresholds
) -> dict[str, Any]:
    """The day's drift record (the HTML report already in the lake); the asset writes the record."""
    from mlops_assets.ml.data import categorical_columns, numeric_columns
    from mlops_assets.monitoring.reports import data_drift

    current = read_predictions(lake, day)
    categorical = [c for c in categorical_columns(reference) if c not in WITHIN_DAY_CONSTANT]
    numeric = [c for c in numeric_columns(reference) if c not in WITHIN_DAY_CONSTANT]
    started = time.perf_counter()
    snapshot, summary = data_drift(
        reference,
        current,
        categorical,
        numeric,
        thresholds.numeric_threshold,
        thresholds.categorical_threshold,
    )
    html = save_html(lake, snapshot, record_key(DRIFT_REPORT, day, "html"), scratch)
    return {
        "day": day.isoformat(),
        "model_version": str(current["model_version"].iloc[0]) if len(current) else None,
        "current_rows": len(current),
        "reference_rows": len(reference),
        "mean_probability": float(current["probability_late"].mean()),
        "reference_mean_probability": float(reference["probability_late"].mean()),
        "report_html": html,
        "seconds": round(time.perf_counter() - started, 3),
        **summary.as_record(),
    }


def drift_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """One day's figures, for that day's materialization: the UI charts each over the partitions."""
    return {
        "drift_share": dg.MetadataValue.float(round(record["drift_share"], 4)),
        "drifted_features": dg.MetadataValue.int(len(record["drifted"])),
        "prediction_drift": dg.MetadataValue.float(round(record["prediction_drift"], 4)),
        "prediction_drifted": record["prediction_drifted"],
        "mean_probability": dg.MetadataValue.float(round(record["mean_probability"], 4)),
        "current_rows": dg.MetadataValue.int(record["current_rows"]),
        "model_version": record["model_version"] or "",
        "report": link(record["report_html"]),
        "seconds": dg.MetadataValue.float(record["seconds"]),
        **{f"drift/{c}": dg.MetadataValue.float(round(v, 4)) for c, v in record["scores"].items()},
    }
