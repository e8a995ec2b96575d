"""The monitoring stage: is the data still what the champion learned from, and is it still right?

monitoring/drift_report       daily; Evidently DataDriftPreset of the day's model inputs and predictions
                              against the champion's training data; HTML report + per-feature scores
monitoring/model_performance  daily, once fct_flights has the day's outcomes; Evidently
                              ClassificationPreset and the evaluation's own metrics for that day

Each writes `monitoring/<asset>/<day>.json` (and `.html`) to the lake; the retraining sensor reads those
records, so the loop works the same on a local folder and on S3.
"""

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from mlops_assets.defs.predictions.assets import BATCH_PREDICTIONS, predictions_key
from mlops_assets.lib.automation import on_new_data
from mlops_assets.lib.calendar import daily_partitions, window_days
from mlops_assets.lib.keys import DRIFT_REPORT, FCT_FLIGHTS, MODEL_PERFORMANCE, TRAINING_SET
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.resources.training_plan import TrainingPlan
from mlops_assets.resources.warehouse import Warehouse

GROUP = "monitoring"
OWNERS = ["team:ml-platform"]
REFERENCE_PREFIX = "monitoring/reference"


def record_key(asset: dg.AssetKey, day: dt.date | str, suffix: str = "json") -> str:
    return f"monitoring/{asset.path[-1]}/{day}.{suffix}"


def read_records(lake: ObjectStore, asset: dg.AssetKey) -> list[dict[str, Any]]:
    """Every day's record of a monitoring asset, oldest first."""
    prefix = f"monitoring/{asset.path[-1]}/"
    keys = sorted(o.key for o in lake.list_objects(prefix) if o.key.endswith(".json"))
    return [json.loads(lake.read_bytes(k)) for k in keys]


def partition_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    window = context.partition_time_window
    return window_days(window)


def read_predictions(lake: ObjectStore, day: dt.date):
    key = predictions_key(day)
    if not lake.exists(key):
        raise dg.Failure(f"{lake.uri(key)} does not exist: materialize batch_predictions for {day}")
    return lake.read_parquet(key)


# Constant within a day by construction: a day's batch against weeks of reference always "drifts" on
# them, so they are left out of the drift share (the season shows in weather and delay features).
WITHIN_DAY_CONSTANT = ("flight_schedule__day_of_week", "flight_schedule__month")


class MonitoringConfig(dg.Config):
    reference_rows: int = Field(
        default=5000, description="Rows sampled (seeded) from the champion's training set as the reference."
    )
    numeric_threshold: float = Field(
        default=1.0,
        description="A numeric feature drifted when the day's distribution is at least this many reference "
        "standard deviations away (normed Wasserstein). Evidently's 0.1 suits large batches; a single "
        "day's weather is always 0.1 away from weeks of it.",
    )
    categorical_threshold: float = Field(
        default=0.2, description="A category drifted at this Jensen-Shannon distance or more."
    )


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


def save_html(lake: ObjectStore, snapshot, key: str, scratch: Path) -> str:
    """Evidently writes HTML to a file; the lake gets it atomically. Returns the lake URI."""
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / Path(key).name
    snapshot.save_html(str(path))
    lake.write_bytes(key, path.read_bytes())
    path.unlink()
    return lake.uri(key)


def link(uri: str) -> dg.MetadataValue:
    return dg.MetadataValue.url(uri) if "://" in uri else dg.MetadataValue.path(uri)


def require_champion(mlflow: MlflowResource):
    from mlops_assets.training.registry import champion_info

    champion = champion_info(mlflow.client(), mlflow.model_name)
    if champion is None:
        raise dg.Failure(f"{mlflow.model_name} has no champion: there is nothing to monitor yet")
    return champion


# ---- drift ----------------------------------------------------------------------------------------------


def drift_of_day(lake, reference, day, scratch, config: MonitoringConfig) -> dict[str, Any]:
    from mlops_assets.ml.data import categorical_columns, numeric_columns
    from mlops_assets.monitoring.reports import data_drift

    current = read_predictions(lake, day)
    categorical = [c for c in categorical_columns(reference) if c not in WITHIN_DAY_CONSTANT]
    numeric = [c for c in numeric_columns(reference) if c not in WITHIN_DAY_CONSTANT]
    started = time.perf_counter()
    snapshot, summary = data_drift(
        reference, current, categorical, numeric, config.numeric_threshold, config.categorical_threshold
    )
    html = save_html(lake, snapshot, record_key(DRIFT_REPORT, day, "html"), scratch)
    record = {
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
    lake.write_bytes(record_key(DRIFT_REPORT, day), json.dumps(record, indent=1).encode())
    return record


@dg.asset(
    key=DRIFT_REPORT,
    deps=[BATCH_PREDICTIONS, TRAINING_SET],
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    owners=OWNERS,
    kinds={"evidently", "html"},
    automation_condition=on_new_data(ignore_updates_of=[TRAINING_SET]),
    description=(
        "Evidently 0.7 DataDriftPreset: the day's model inputs (as batch_predictions scored them) against "
        "a seeded sample of the champion's training set, plus the drift of the predicted probability. "
        "Per-feature drift scores, the share of drifted features and the prediction drift are metadata "
        "(charted over the days in the UI); the HTML report is in the lake at "
        "monitoring/drift_report/<day>.html."
    ),
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: MonitoringConfig,
    mlflow: MlflowResource,
    training: TrainingPlan,
    lake: ObjectStore,
) -> dg.MaterializeResult:
    champion = require_champion(mlflow)
    reference = reference_frame(lake, mlflow, champion, config.reference_rows)
    scratch = training.scratch("evidently", context.run.run_id)
    records = [drift_of_day(lake, reference, day, scratch, config) for day in partition_days(context)]
    for record in records:
        context.add_asset_metadata(drift_metadata(record), partition_key=record["day"])
    metadata: dict[str, Any] = {
        "reference": f"champion v{champion.version}: {champion.training_set_key} ({len(reference)} rows)",
    }
    if len(records) > 1:
        metadata["by_day"] = by_day_table(
            [
                {
                    "day": r["day"],
                    "drift_share": r["drift_share"],
                    "prediction_drift": r["prediction_drift"],
                    "drifted": ", ".join(r["drifted"][:6]),
                }
                for r in records
            ],
            ".3f",
        )
    return dg.MaterializeResult(metadata=metadata)


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


def by_day_table(rows: list[dict[str, Any]], floatfmt: str) -> dg.MetadataValue:
    """The run's days side by side (range-wide: the same table on every partition of the run)."""
    import pandas as pd

    return dg.MetadataValue.md(pd.DataFrame(rows).to_markdown(index=False, floatfmt=floatfmt))


# ---- performance ------------------------------------------------------------------------------------------


def read_labels(warehouse: Warehouse, day: dt.date):
    """flight_id -> label_late of the day's flights that arrived (fct_flights, on either warehouse)."""
    return warehouse.query_arrow(
        "select flight_id, label_late from marts.fct_flights "
        "where flight_date = ? and label_late is not null",
        [day],
    ).to_pandas()


def performance_of_day(lake, labels, day, scratch) -> dict[str, Any]:
    from mlops_assets.ml.metrics import classification_metrics
    from mlops_assets.monitoring.reports import classification_quality

    predictions = read_predictions(lake, day)
    frame = predictions.merge(labels, on="flight_id", how="inner", validate="one_to_one")
    if frame.empty:
        raise dg.Failure(f"no labelled flight of {day} matches a prediction")
    threshold = float(frame["decision_threshold"].iloc[0])
    metrics = classification_metrics(frame["label_late"].astype(int), frame["probability_late"])
    snapshot, evidently = classification_quality(frame, threshold)
    html = save_html(lake, snapshot, record_key(MODEL_PERFORMANCE, day, "html"), scratch)
    record = {
        "day": day.isoformat(),
        "model_version": str(frame["model_version"].iloc[0]),
        "labelled_rows": len(frame),
        "predicted_rows": len(predictions),
        "decision_threshold": threshold,
        "metrics": metrics,
        "evidently": evidently,
        "report_html": html,
    }
    lake.write_bytes(record_key(MODEL_PERFORMANCE, day), json.dumps(record, indent=1).encode())
    return record


@dg.asset(
    key=MODEL_PERFORMANCE,
    deps=[BATCH_PREDICTIONS, FCT_FLIGHTS],
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    owners=OWNERS,
    kinds={"evidently", "html"},
    automation_condition=on_new_data(),
    description=(
        "How right the champion was on the day, once fct_flights has the day's outcomes (cancelled and "
        "diverted flights have no label and are left out): ROC-AUC, PR-AUC, log loss, Brier and ECE as in "
        "models/model_evaluation, so the two can be compared, and Evidently's ClassificationPreset at the "
        "model's decision threshold (HTML in monitoring/model_performance/<day>.html)."
    ),
)
def model_performance(
    context: dg.AssetExecutionContext, training: TrainingPlan, warehouse: Warehouse, lake: ObjectStore
) -> dg.MaterializeResult:
    scratch = training.scratch("evidently", context.run.run_id)
    records = [
        performance_of_day(lake, read_labels(warehouse, d), d, scratch) for d in partition_days(context)
    ]
    for record in records:
        context.add_asset_metadata(performance_metadata(record), partition_key=record["day"])
    metadata: dict[str, Any] = {}
    if len(records) > 1:
        columns = ["roc_auc", "pr_auc", "log_loss", "ece", "rows"]
        metadata["by_day"] = by_day_table(
            [
                {"day": r["day"], "version": r["model_version"], **{c: r["metrics"].get(c) for c in columns}}
                for r in records
            ],
            ".4f",
        )
    return dg.MaterializeResult(metadata=metadata)


PERFORMANCE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "positive_rate", "mean_prediction")


def performance_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """One day's figures, for that day's materialization."""
    metadata: dict[str, Any] = {
        name: dg.MetadataValue.float(round(value, 4))
        for name, value in record["metrics"].items()
        if name in PERFORMANCE_METRICS
    }
    evidently = record["evidently"]
    return {
        **metadata,
        "model_version": record["model_version"],
        "labelled_flights": dg.MetadataValue.int(record["labelled_rows"]),
        "precision_at_threshold": dg.MetadataValue.float(round(evidently.get("Precision", 0), 4)),
        "recall_at_threshold": dg.MetadataValue.float(round(evidently.get("Recall", 0), 4)),
        "report": link(record["report_html"]),
    }


def build_monitoring_assets() -> list[dg.AssetsDefinition]:
    return [drift_report, model_performance]
