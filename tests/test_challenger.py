"""The challenger's parts on small synthetic tables (seconds, no fixtures): the trees' grid chooses by
validation, the refit learns the validation days, the calibration follows the most recent days' late rate,
and the family with the better validation ROC-AUC is chosen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_assets.ml.boosting import RecencyCalibration, TreeParams, fit_boosted
from mlops_assets.ml.data import LABEL, TIMESTAMP
from mlops_assets.training.challenger import PYTORCH, TREES, choose_family, recent_days_mask

CATEGORICAL = ["carrier"]
NUMERIC = ["weather_hourly__visib", "delay_stats_carrier__late_rate_1d"]


def flights(days: int, start: str, per_day: int, base_logit: float, seed: int, carriers=("AA", "UA", "B6")):
    """`days` local days of flights whose lateness rises with low visibility and the carrier's history;
    `base_logit` sets the late rate of the period."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    day = np.repeat(np.arange(days), per_day)
    first = pd.Timestamp(start, tz="America/New_York") + pd.Timedelta(hours=9)
    timestamps = first + pd.to_timedelta(day, "D")
    visib = rng.uniform(0, 10, n)
    history = rng.uniform(0, 0.5, n)
    carrier = rng.choice(list(carriers), n)
    logit = base_logit - 0.4 * visib + 4 * history + np.where(carrier == "AA", 0.8, 0.0)
    late = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            TIMESTAMP: timestamps.tz_convert("UTC"),
            "carrier": carrier,
            NUMERIC[0]: np.where(rng.random(n) < 0.05, np.nan, visib),
            NUMERIC[1]: history,
            LABEL: late,
        }
    )


def test_the_tree_grid_chooses_by_validation_roc_auc():
    from sklearn.metrics import roc_auc_score

    from mlops_assets.ml.baselines import fit_baseline

    train, valid = flights(20, "2013-01-01", 150, 0.0, 1), flights(6, "2013-01-21", 150, 0.0, 2)
    # The weak point (leaves larger than half the rows: no split at all) comes first: the order must not
    # decide, validation must.
    weak = TreeParams(learning_rate=0.02, max_leaf_nodes=2, min_samples_leaf=2000, l2_regularization=50.0)
    good = TreeParams(learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20, l2_regularization=1.0)
    pipeline, points = fit_baseline(
        "hist_gradient_boosting", train, valid, CATEGORICAL, NUMERIC, LABEL, seed=0, grid=(weak, good)
    )
    assert [p["valid_auc"] for p in points] == sorted((p["valid_auc"] for p in points), reverse=True)
    assert points[0]["max_leaf_nodes"] == 15 and points[0]["valid_auc"] > points[1]["valid_auc"]
    chosen = pipeline[-1]
    assert (chosen.max_leaf_nodes, chosen.learning_rate) == (15, 0.1)
    inputs = valid[[*CATEGORICAL, *NUMERIC]]
    assert roc_auc_score(valid[LABEL], pipeline.predict_proba(inputs)[:, 1]) == pytest.approx(
        points[0]["valid_auc"]
    )
    # The rounds recorded for a refit are those up to the best validation loss, not the patience after it.
    assert 1 <= points[0]["iterations"] < chosen.n_iter_
    _, none = fit_baseline("logistic_regression", train, valid, CATEGORICAL, NUMERIC, LABEL)
    assert none == []


def test_recency_calibration_recovers_a_shift_of_the_base_rate():
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0.05, 0.6, 20_000)
    logit = np.log(probabilities / (1 - probabilities))
    labels = rng.random(len(logit)) < 1 / (1 + np.exp(-(logit + 0.7)))  # the late rate went up
    calibration = RecencyCalibration.fit(labels, probabilities)
    assert calibration.intercept == pytest.approx(0.7, abs=0.08)
    assert calibration.slope == pytest.approx(1.0, abs=0.08)
    assert calibration.apply(probabilities).mean() == pytest.approx(labels.mean(), abs=0.01)
    assert RecencyCalibration().apply(probabilities) == pytest.approx(probabilities)


def test_the_refit_learns_the_validation_days_and_calibrates_on_the_most_recent(tmp_path):
    """Train: 20 days at a low late rate; validation: 8 days, the last 4 at a much higher rate and with a
    carrier never seen in training. The refit knows that carrier, its rounds are the ones given, and the
    calibration (fitted on the last 4 days only) lifts the probabilities towards the recent rate."""
    from mlops_assets.ml.boosting import BoostedModel

    train = flights(20, "2013-01-01", 150, -1.0, 1)
    older = flights(4, "2013-01-21", 150, -1.0, 2)
    newer = flights(4, "2013-01-25", 150, 0.5, 3, carriers=("AA", "UA", "B6", "WN"))
    valid = pd.concat([older, newer], ignore_index=True)
    recent = recent_days_mask(valid, 4)
    assert recent.sum() == len(newer) and not recent[: len(older)].any()
    labels = (train[LABEL].to_numpy().astype(float), valid[LABEL].to_numpy().astype(float))
    params = TreeParams(learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20)
    fitted = fit_boosted(train, valid, recent, CATEGORICAL, NUMERIC, labels, params, 40, seed=0)
    model = fitted.model
    assert model.trees.n_iter_ == 40 and model.iterations == 40
    assert "WN" in model.preprocessor.vocabulary["carrier"]  # learned from the validation days too
    assert model.calibration.intercept > 0.5  # the recent days are later than the trees learned
    future = flights(4, "2013-01-29", 150, 0.5, 4)
    calibrated = model.predict(future)
    raw = model.trees.predict_proba(
        np.hstack([a.astype(np.float32) for a in model.preprocessor.transform(future)])
    )[:, 1]
    rate = future[LABEL].mean()
    assert abs(calibrated.mean() - rate) < abs(raw.mean() - rate)
    assert len(fitted.valid_probabilities) == len(valid)
    again = BoostedModel.load(model.save(tmp_path / "bundle"))
    np.testing.assert_array_equal(again.predict(future), calibrated)


def test_the_family_with_the_better_validation_roc_auc_is_chosen():
    assert choose_family("auto", {PYTORCH: 0.70, TREES: 0.72}).family == TREES
    assert choose_family("auto", {PYTORCH: 0.73, TREES: 0.72}).family == PYTORCH
    assert choose_family("auto", {PYTORCH: 0.72, TREES: 0.72}).family == PYTORCH  # a tie keeps the network
    forced = choose_family(PYTORCH, {PYTORCH: 0.60, TREES: 0.72})
    assert forced.family == PYTORCH and "asked for" in forced.reason
    assert "+0.0200" in choose_family("auto", {PYTORCH: 0.70, TREES: 0.72}).reason
    with pytest.raises(ValueError, match="unknown model family"):
        choose_family("xgboost", {PYTORCH: 0.7, TREES: 0.7})
