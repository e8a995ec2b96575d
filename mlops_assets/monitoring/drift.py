"""Drift of a day: the day's model inputs and predictions against the champion's training data
(Evidently's DataDriftPreset plus the drift of the predicted probability)."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from mlops_assets.lib.keys import DRIFT_REPORT
from mlops_assets.monitoring.records import link, read_predictions, record_key
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.serving.batch import predictions_key

REFERENCE_PREFIX = "monitoring/reference"
INPUTS_PREFIX = "monitoring/report_inputs"
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


def reference_key(champion, rows: int) -> str:
    return f"{REFERENCE_PREFIX}/v{champion.version}_{rows}.parquet"


def reference_frame(lake: ObjectStore, mlflow: MlflowResource, champion, rows: int, seed: int = 0):
    """A seeded sample of the champion's training set with the champion's own predictions on it,
    cached per version in the lake (the same reference for every day the version serves)."""
    import mlflow as mlflow_api

    key = reference_key(champion, rows)
    if lake.exists(key):
        return lake.read_parquet(key)
    if not champion.training_set_key or not lake.exists(champion.training_set_key):
        raise dg.Failure(
            f"champion v{champion.version}'s training set ({champion.training_set_key}) is not in the lake"
        )
    frame = lake.read_parquet(champion.training_set_key)
    mlflow.activate()
    model = mlflow_api.pyfunc.load_model(champion.model_uri)
    reference = reference_sample(frame, lambda inputs: model.predict(inputs).to_numpy(), rows, seed)
    lake.write_parquet(key, reference)
    return reference


def reference_sample(training_set, predict: Callable[[Any], Any], rows: int, seed: int = 0):
    """The reference of a champion: a seeded sample of `rows` of its training set, as model inputs, with
    its own probabilities (`predict` of those inputs) beside them."""
    from mlops_assets.ml.data import categorical_columns, numeric_columns
    from mlops_assets.training.data import model_input_frame

    sample = training_set.sample(n=min(rows, len(training_set)), random_state=seed).sort_index()
    inputs = model_input_frame(sample, categorical_columns(sample), numeric_columns(sample))
    return inputs.assign(probability_late=predict(inputs)).reset_index(drop=True)


@dataclass(frozen=True)
class Reference:
    """The reference of a run: where it is in the lake (each day's report inputs name it) and its sample,
    prepared once for all the run's days."""

    key: str
    sample: Any  # reports.DriftReference

    @property
    def frame(self):
        return self.sample.frame


def load_reference(lake: ObjectStore, mlflow: MlflowResource, champion, rows: int) -> Reference:
    from mlops_assets.monitoring.reports import DriftReference

    frame = reference_frame(lake, mlflow, champion, rows)
    return Reference(key=reference_key(champion, rows), sample=DriftReference(frame))


def drift_features(reference) -> tuple[list[str], list[str]]:
    """(categorical, numeric) model inputs whose drift counts."""
    from mlops_assets.ml.data import categorical_columns, numeric_columns

    categorical = [c for c in categorical_columns(reference) if c not in WITHIN_DAY_CONSTANT]
    numeric = [c for c in numeric_columns(reference) if c not in WITHIN_DAY_CONSTANT]
    return categorical, numeric


def inputs_key(day: dt.date | str) -> str:
    # Beside the records, not among them: readers take every .json under monitoring/drift_report/.
    return f"{INPUTS_PREFIX}/{DRIFT_REPORT.path[-1]}/{day}.json"


def drift_of_day(
    lake: ObjectStore, reference: Reference, day: dt.date, thresholds: DriftThresholds
) -> dict[str, Any]:
    """The day's drift record, its page and the inputs of its Evidently report already in the lake; the
    asset writes the record. The statistics are Evidently's (`reports.drift_summary`); the report
    itself is rendered on demand (`render_drift_html`)."""
    from mlops_assets.monitoring.pages import drift_page
    from mlops_assets.monitoring.reports import drift_summary

    current = read_predictions(lake, day)
    categorical, numeric = drift_features(reference.frame)
    started = time.perf_counter()
    summary = drift_summary(
        reference.sample,
        current,
        categorical,
        numeric,
        thresholds.numeric_threshold,
        thresholds.categorical_threshold,
    )
    html_key = record_key(DRIFT_REPORT, day, "html")
    inputs = {
        "reference": reference.key,
        "current": predictions_key(day),
        "categorical": categorical,
        "numeric": numeric,
        "numeric_threshold": thresholds.numeric_threshold,
        "categorical_threshold": thresholds.categorical_threshold,
    }
    lake.write_bytes(inputs_key(day), json.dumps(inputs, indent=1).encode())
    record = {
        "day": day.isoformat(),
        "model_version": str(current["model_version"].iloc[0]) if len(current) else None,
        "current_rows": len(current),
        "reference_rows": len(reference.frame),
        "mean_probability": float(current["probability_late"].mean()),
        "reference_mean_probability": float(reference.frame["probability_late"].mean()),
        "report_html": lake.uri(html_key),
        **summary.as_record(),
    }
    lake.write_bytes(html_key, drift_page(record, DRIFT_REPORT.to_user_string()).encode())
    return {**record, "seconds": round(time.perf_counter() - started, 3)}


def render_drift_html(lake: ObjectStore, day: dt.date | str) -> tuple[str, bool]:
    """(URI, same figures): Evidently's report of a day's drift, rendered from the inputs the asset
    recorded, written over the day's page; whether its figures are the day's record's (False when the
    batch predictions changed since the asset ran)."""
    from mlops_assets.monitoring.reports import data_drift

    key = inputs_key(day)
    if not lake.exists(key):
        raise dg.Failure(
            f"{lake.uri(key)} does not exist: materialize {DRIFT_REPORT.to_user_string()} for {day}"
        )
    inputs = json.loads(lake.read_bytes(key))
    snapshot, summary = data_drift(
        lake.read_parquet(inputs["reference"]),
        lake.read_parquet(inputs["current"]),
        inputs["categorical"],
        inputs["numeric"],
        inputs["numeric_threshold"],
        inputs["categorical_threshold"],
    )
    html_key = record_key(DRIFT_REPORT, day, "html")
    lake.write_bytes(html_key, snapshot.get_html_str(as_iframe=False).encode())
    record_path = record_key(DRIFT_REPORT, day)
    recorded = json.loads(lake.read_bytes(record_path)) if lake.exists(record_path) else {}
    same = all(_same_figure(recorded.get(k), v) for k, v in summary.as_record().items())
    return lake.uri(html_key), same


def _same_figure(recorded: Any, rendered: Any) -> bool:
    # Jensen-Shannon sums over a Python set of the categories, in an order that follows the process's
    # string hash seed: two processes agree to about 1e-15, not to the last bit.
    if isinstance(recorded, dict) and isinstance(rendered, dict):
        return recorded.keys() == rendered.keys() and all(
            _same_figure(recorded[k], rendered[k]) for k in recorded
        )
    if isinstance(recorded, float) and isinstance(rendered, float):
        return math.isclose(recorded, rendered, rel_tol=1e-9, abs_tol=1e-12)
    return recorded == rendered


def drift_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """One day's figures, for that day's materialization: the UI charts each over the partitions; the
    report link opens the day's page, and the command renders Evidently's report there."""
    from mlops_assets.monitoring.pages import render_command

    return {
        "drift_share": dg.MetadataValue.float(round(record["drift_share"], 4)),
        "drifted_features": dg.MetadataValue.int(len(record["drifted"])),
        "prediction_drift": dg.MetadataValue.float(round(record["prediction_drift"], 4)),
        "prediction_drifted": record["prediction_drifted"],
        "mean_probability": dg.MetadataValue.float(round(record["mean_probability"], 4)),
        "current_rows": dg.MetadataValue.int(record["current_rows"]),
        "model_version": record["model_version"] or "",
        "report": link(record["report_html"]),
        "evidently_report": dg.MetadataValue.text(
            render_command(DRIFT_REPORT.to_user_string(), record["day"])
        ),
        "seconds": dg.MetadataValue.float(record["seconds"]),
        **{f"drift/{c}": dg.MetadataValue.float(round(v, 4)) for c, v in record["scores"].items()},
    }
