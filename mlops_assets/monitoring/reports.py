"""Evidently 0.7 reports (the new API: `Report`, `Dataset`, `DataDefinition`, presets) and what we read
back from them. Pure functions of pandas frames: no Dagster, no lake."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PREDICTION = "probability_late"
LABEL = "label_late"


@dataclass
class DriftSummary:
    drift_share: float  # drifted features / features (the prediction is reported on its own)
    drifted: list[str]
    scores: dict[str, float]  # feature -> Evidently's drift score (distance or p-value, see methods)
    methods: dict[str, str]
    thresholds: dict[str, float]
    prediction_drift: float
    prediction_drifted: bool
    features: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "drift_share": self.drift_share,
            "drifted": self.drifted,
            "scores": self.scores,
            "methods": self.methods,
            "thresholds": self.thresholds,
            "prediction_drift": self.prediction_drift,
            "prediction_drifted": self.prediction_drifted,
            "features": self.features,
            **self.extra,
        }


def _is_drift(method: str, score: float, threshold: float) -> bool:
    # Evidently picks a statistical test (p-value: drift when below) or a distance (drift when at or
    # above) per column from the data's size and type; the method's name says which.
    if "p_value" in method.lower() or "p-value" in method.lower():
        return score < threshold
    return score >= threshold


def _value_drifts(snapshot) -> dict[str, tuple[float, str, float]]:
    """column -> (score, method, threshold) of every ValueDrift metric of a snapshot."""
    drifts = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            drifts[config["column"]] = (float(metric["value"]), config["method"], float(config["threshold"]))
    return drifts


def data_drift(
    reference,
    current,
    categorical: list[str],
    numeric: list[str],
    numeric_threshold: float,
    categorical_threshold: float,
):
    """(snapshot, DriftSummary): Evidently's DataDriftPreset over the features, plus the prediction's
    own drift, current day against the reference.

    The methods are fixed rather than left to Evidently's size-based choice, so that a column does not
    switch tests from one day to the next (a column with many nulls would fall to K-S p-values):
    normed Wasserstein distance for numbers (shift in reference standard deviations), Jensen-Shannon
    distance for categories."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    # Evidently refuses a column with no value (wind gusts on a calm day): it is reported as empty, not
    # as drifted, and left out of the share.
    empty = [c for c in (*categorical, *numeric) if current[c].isna().all() or reference[c].isna().all()]
    categorical = [c for c in categorical if c not in empty]
    numeric = [c for c in numeric if c not in empty]
    features = [*categorical, *numeric]
    definition = DataDefinition(numerical_columns=[*numeric, PREDICTION], categorical_columns=categorical)
    columns = [*features, PREDICTION]
    preset = DataDriftPreset(
        columns=features,
        num_method="wasserstein",
        num_threshold=numeric_threshold,
        cat_method="jensenshannon",
        cat_threshold=categorical_threshold,
    )
    prediction_drift = ValueDrift(column=PREDICTION, method="wasserstein", threshold=numeric_threshold)
    report = Report([preset, prediction_drift])
    snapshot = report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    drifts = _value_drifts(snapshot)
    flags = {c: _is_drift(m, s, t) for c, (s, m, t) in drifts.items()}
    prediction = drifts[PREDICTION]
    summary = DriftSummary(
        drift_share=sum(flags[c] for c in features) / len(features),
        drifted=[c for c in features if flags[c]],
        scores={c: drifts[c][0] for c in features},
        methods={c: drifts[c][1] for c in features},
        thresholds={c: drifts[c][2] for c in features},
        prediction_drift=prediction[0],
        prediction_drifted=flags[PREDICTION],
        features=len(features),
        extra={"empty": empty},
    )
    return snapshot, summary


def classification_quality(current, threshold: float):
    """(snapshot, {metric: value}): Evidently's ClassificationPreset for the day's labelled flights, at
    the model's own decision threshold."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    definition = DataDefinition(
        classification=[BinaryClassification(target=LABEL, prediction_probas=PREDICTION, pos_label=1)],
        numerical_columns=[PREDICTION],
        categorical_columns=[LABEL],
    )
    frame = current[[LABEL, PREDICTION]].astype({LABEL: "int64", PREDICTION: "float64"})
    snapshot = Report([ClassificationPreset(probas_threshold=threshold)]).run(
        Dataset.from_pandas(frame, data_definition=definition), None
    )
    values = {}
    for metric in snapshot.dict()["metrics"]:
        kind = metric.get("config", {}).get("type", "").rsplit(":", 1)[-1]
        if isinstance(metric.get("value"), int | float):
            values[kind] = float(metric["value"])
    return snapshot, values
