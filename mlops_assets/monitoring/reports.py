"""Evidently 0.7 reports (the new API: `Report`, `Dataset`, `DataDefinition`, presets) and what we read
back from them. Pure functions of pandas frames: no Dagster, no lake.

The drift of a day has two paths with the same numbers: `drift_summary` calls the statistical tests that
Evidently's `DataDriftPreset` and `ValueDrift` call, column by column, and builds no widget (the daily
asset's path); `data_drift` runs the whole Evidently report, widgets and all (the HTML, rendered on
demand, and the reference the tests compare the fast path with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PREDICTION = "probability_late"
LABEL = "label_late"
# The methods are fixed rather than left to Evidently's size-based choice, so that a column does not
# switch tests from one day to the next (a column with many nulls would fall to K-S p-values): normed
# Wasserstein distance for numbers (shift in reference standard deviations), Jensen-Shannon distance for
# categories.
NUMERIC_METHOD = "wasserstein"
CATEGORICAL_METHOD = "jensenshannon"


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


@dataclass(frozen=True)
class DriftColumns:
    """The columns a day's drift compares, by type, and those left out because one side has no value."""

    categorical: list[str]
    numeric: list[str]
    empty: list[str]

    @property
    def features(self) -> list[str]:
        return [*self.categorical, *self.numeric]


def drift_columns(reference, current, categorical: list[str], numeric: list[str]) -> DriftColumns:
    # Evidently refuses a column with no value (wind gusts on a calm day): it is reported as empty, not
    # as drifted, and left out of the share.
    empty = [c for c in (*categorical, *numeric) if current[c].isna().all() or reference[c].isna().all()]
    return DriftColumns(
        categorical=[c for c in categorical if c not in empty],
        numeric=[c for c in numeric if c not in empty],
        empty=empty,
    )


def _is_drift(method: str, score: float, threshold: float) -> bool:
    # Evidently picks a statistical test (p-value: drift when below) or a distance (drift when at or
    # above) per column from the data's size and type; the method's name says which.
    if "p_value" in method.lower() or "p-value" in method.lower():
        return score < threshold
    return score >= threshold


def _summary(drifts: dict[str, tuple[float, str, float]], columns: DriftColumns) -> DriftSummary:
    """The record's figures from column -> (score, method, threshold), the prediction included."""
    features = columns.features
    flags = {c: _is_drift(m, s, t) for c, (s, m, t) in drifts.items()}
    return DriftSummary(
        drift_share=sum(flags[c] for c in features) / len(features),
        drifted=[c for c in features if flags[c]],
        scores={c: drifts[c][0] for c in features},
        methods={c: drifts[c][1] for c in features},
        thresholds={c: drifts[c][2] for c in features},
        prediction_drift=drifts[PREDICTION][0],
        prediction_drifted=flags[PREDICTION],
        features=len(features),
        extra={"empty": columns.empty},
    )


def _value_drifts(snapshot) -> dict[str, tuple[float, str, float]]:
    """column -> (score, method, threshold) of every ValueDrift metric of a snapshot."""
    drifts = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            drifts[config["column"]] = (float(metric["value"]), config["method"], float(config["threshold"]))
    return drifts


def evidently_drift(
    reference,
    current,
    categorical: list[str],
    numeric: list[str],
    numeric_threshold: float,
    categorical_threshold: float,
):
    """(snapshot, DriftColumns): Evidently's DataDriftPreset over the features plus the prediction's own
    ValueDrift, current day against the reference: the whole report, widgets included (its HTML)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = drift_columns(reference, current, categorical, numeric)
    definition = DataDefinition(
        numerical_columns=[*columns.numeric, PREDICTION], categorical_columns=columns.categorical
    )
    selected = [*columns.features, PREDICTION]
    preset = DataDriftPreset(
        columns=columns.features,
        num_method=NUMERIC_METHOD,
        num_threshold=numeric_threshold,
        cat_method=CATEGORICAL_METHOD,
        cat_threshold=categorical_threshold,
    )
    prediction_drift = ValueDrift(column=PREDICTION, method=NUMERIC_METHOD, threshold=numeric_threshold)
    snapshot = Report([preset, prediction_drift]).run(
        Dataset.from_pandas(current[selected], data_definition=definition),
        Dataset.from_pandas(reference[selected], data_definition=definition),
    )
    return snapshot, columns


def snapshot_summary(snapshot, columns: DriftColumns) -> DriftSummary:
    return _summary(_value_drifts(snapshot), columns)


def data_drift(
    reference,
    current,
    categorical: list[str],
    numeric: list[str],
    numeric_threshold: float,
    categorical_threshold: float,
):
    """(snapshot, DriftSummary) of `evidently_drift`."""
    snapshot, columns = evidently_drift(
        reference, current, categorical, numeric, numeric_threshold, categorical_threshold
    )
    return snapshot, snapshot_summary(snapshot, columns)


def _finite(values):
    # What Evidently does to both sides of a column before its test (get_one_column_drift).
    import numpy as np

    return values.replace([-np.inf, np.inf], np.nan).dropna()


class DriftReference:
    """The reference side of `drift_summary`, prepared once for every day it is compared with: each
    column cleaned as Evidently cleans it on every call."""

    def __init__(self, frame) -> None:
        self.frame = frame
        self._finite: dict[str, Any] = {}

    def column(self, name: str):
        if name not in self._finite:
            self._finite[name] = _finite(self.frame[name])
        return self._finite[name]


def _column_drift(reference, current, numeric: bool, method: str, threshold: float) -> float:
    """Evidently's score of one column: the registered test that ValueDrift resolves `method` to, called
    as ValueDrift calls it."""
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Numerical if numeric else ColumnType.Categorical
    test = get_stattest(reference, current, kind, method)
    return test(reference, current, kind, threshold).drift_score


def drift_summary(
    reference: DriftReference,
    current,
    categorical: list[str],
    numeric: list[str],
    numeric_threshold: float,
    categorical_threshold: float,
) -> DriftSummary:
    """`data_drift`'s summary without its report: the same tests on the same columns, no widget."""
    columns = drift_columns(reference.frame, current, categorical, numeric)
    plan = [
        *((c, False, CATEGORICAL_METHOD, categorical_threshold) for c in columns.categorical),
        *((c, True, NUMERIC_METHOD, numeric_threshold) for c in [*columns.numeric, PREDICTION]),
    ]
    drifts = {
        name: (
            float(
                _column_drift(reference.column(name), _finite(current[name]), is_number, method, threshold)
            ),
            method,
            float(threshold),
        )
        for name, is_number, method, threshold in plan
    }
    return _summary(drifts, columns)


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
