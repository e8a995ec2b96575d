"""How right the champion was on a day, once the day's outcomes are in fct_flights: the evaluation's own
metrics and Evidently's ClassificationPreset at the model's decision threshold."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.lib.keys import MODEL_PERFORMANCE
from mlops_assets.monitoring.records import link, read_predictions, record_key, save_html
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.warehouse import Warehouse

PERFORMANCE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "positive_rate", "mean_prediction")


def read_labels(warehouse: Warehouse, day: dt.date):
    """flight_id -> label_late of the day's flights that arrived (fct_flights, on either warehouse)."""
    return warehouse.query_arrow(
        "select flight_id, label_late from marts.fct_flights "
        "where flight_date = ? and label_late is not null",
        [day],
    ).to_pandas()


def performance_of_day(lake: ObjectStore, labels, day: dt.date, scratch: Path) -> dict[str, Any]:
    """The day's performance record (the HTML report already in the lake); the asset writes the record."""
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
    return {
        "day": day.isoformat(),
        "model_version": str(frame["model_version"].iloc[0]),
        "labelled_rows": len(frame),
        "predicted_rows": len(predictions),
        "decision_threshold": threshold,
        "metrics": metrics,
        "evidently": evidently,
        "report_html": html,
    }


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
