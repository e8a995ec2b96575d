"""Holdout metrics shared by the evaluation asset and the monitoring stage."""

from __future__ import annotations

import numpy as np
import pandas as pd

CALIBRATION_BINS = 10


def classification_metrics(labels, probabilities) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), log loss, Brier score and expected calibration error."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(labels, dtype="float64")
    p = np.clip(np.asarray(probabilities, dtype="float64"), 1e-7, 1 - 1e-7)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "rows": float(len(y)),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "mean_prediction": float(p.mean()) if len(p) else float("nan"),
    }


def calibration_table(labels, probabilities, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Equal-width probability bins: mean predicted probability against the observed late rate."""
    y = np.asarray(labels, dtype="float64")
    p = np.asarray(probabilities, dtype="float64")
    which = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": which, "p": p, "y": y})
    table = frame.groupby("bin").agg(mean_predicted=("p", "mean"), observed=("y", "mean"), rows=("y", "size"))
    return table.reset_index()


def expected_calibration_error(labels, probabilities, bins: int = CALIBRATION_BINS) -> float:
    table = calibration_table(labels, probabilities, bins)
    if table.empty:
        return float("nan")
    weights = table["rows"] / table["rows"].sum()
    return float((weights * (table["mean_predicted"] - table["observed"]).abs()).sum())


def metrics_by_group(frame: pd.DataFrame, group: str, label: str, probability: str, min_rows: int = 50):
    """The same metrics per value of `group` (carriers with at least `min_rows` holdout rows)."""
    rows = []
    for value, part in frame.groupby(group):
        if len(part) >= min_rows:
            rows.append({group: value, **classification_metrics(part[label], part[probability])})
    return pd.DataFrame(rows)


def f1_threshold(labels, probabilities) -> float:
    """The probability cut that maximizes F1: the decision rule that serving applies.

    Chosen on validation days (never the holdout), so the holdout still judges the whole rule.
    """
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(labels, dtype="float64")
    if len(np.unique(y)) < 2:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, np.asarray(probabilities, dtype="float64"))
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])
