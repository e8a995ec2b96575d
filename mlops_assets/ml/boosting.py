"""Gradient-boosted trees for the challenger: a small validated grid, a refit on more days, and a
calibration on the most recent days.

The trees read the same arrays as the network (`Preprocessor.transform`: category indices and normal
scores with missing-indicators), so a boosted champion is served by the same feature path as a network
(serving/champion.py needs only `preprocessor` and `predict_arrays`). The normal scores are a monotone
map of the raw values, which trees are blind to, apart from the clipping of the outer 0.1 %.

Importable with numpy, pandas and scikit-learn alone (the GPU machine's image has them).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.ml.preprocessing import Preprocessor

TREES_FILE = "trees.joblib"
PREPROCESSING_FILE = "preprocessing.json"
META_FILE = "boosting.json"
# Rounds without improvement of the validation loss before a grid point stops.
PATIENCE = 30
MAX_ITER = 1500


@dataclass(frozen=True)
class TreeParams:
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0
    max_features: float = 1.0  # share of the features each split may look at

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TreeParams:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# Small and regularised on purpose: the train days are January-February and the holdout late March, so
# what generalises across weeks (large leaves, strong L2, half the features per split) matters more than
# fit. Measured on Jan-Mar 2013 (validation ROC-AUC, holdout ROC-AUC of the train-only fit): the first
# point 0.7534, 0.7265; 15 leaves at rate 0.1 0.7525, 0.7220; 31 leaves on all features 0.7473, 0.7139.
# Four points keep the step within the training graph's time on 2 cores.
GRID: tuple[TreeParams, ...] = (
    TreeParams(learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=200, l2_regularization=10.0,
               max_features=0.5),
    TreeParams(learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=200, l2_regularization=10.0,
               max_features=0.5),
    TreeParams(learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=100, l2_regularization=10.0,
               max_features=0.5),
    TreeParams(learning_rate=0.1, max_leaf_nodes=31, min_samples_leaf=100, l2_regularization=10.0),
)  # fmt: skip
# OpenMP threads of a fit. One: on these shared 2 cores, beside the demo's online-store run or another
# process, OpenMP's spinning threads slowed a fit by more than ten times (a grid point took 14 s with one
# thread and did not finish in 10 min with two, load average 10); alone, two threads gain little.
FIT_THREADS = 1


def design_matrix(codes: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Category indices first (declared categorical to the trees), then the numbers."""
    return np.hstack([codes.astype(np.float32), numbers.astype(np.float32)])


def fit_trees(
    codes: np.ndarray,
    numbers: np.ndarray,
    labels: np.ndarray,
    params: TreeParams,
    seed: int,
    valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    iterations: int | None = None,
):
    """A HistGradientBoostingClassifier: early-stopped on `valid` (its loss) when given, else exactly
    `iterations` rounds (a refit of a configuration whose rounds were chosen on validation)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if (valid is None) == (iterations is None):
        raise ValueError("give either validation arrays (early stopping) or a number of iterations")
    categorical = np.zeros(codes.shape[1] + numbers.shape[1], dtype=bool)
    categorical[: codes.shape[1]] = True
    trees = HistGradientBoostingClassifier(
        **params.to_dict(),
        max_iter=iterations or MAX_ITER,
        categorical_features=categorical,
        early_stopping=valid is not None,
        n_iter_no_change=PATIENCE,
        random_state=seed,
    )
    x = design_matrix(codes, numbers)
    with fit_threads():
        if valid is None:
            trees.fit(x, labels)
        else:
            trees.fit(x, labels, X_val=design_matrix(valid[0], valid[1]), y_val=valid[2])
    return trees


def fit_threads():
    """A context in which scikit-learn's OpenMP loops use FIT_THREADS threads."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=FIT_THREADS, user_api="openmp")


def best_round(trees) -> int:
    """The round of the best validation loss: scikit-learn keeps the PATIENCE rounds after it."""
    return int(trees.n_iter_ if trees.n_iter_ >= MAX_ITER else max(1, trees.n_iter_ - PATIENCE))


@dataclass(frozen=True)
class GridPoint:
    params: TreeParams
    iterations: int  # rounds up to the best validation loss
    valid_auc: float
    seconds: float

    def to_dict(self) -> dict:
        return {**self.params.to_dict(), "iterations": self.iterations, "valid_auc": self.valid_auc,
                "seconds": self.seconds}  # fmt: skip


def search_grid(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray, np.ndarray],
    seed: int,
    grid: tuple[TreeParams, ...] = GRID,
) -> list[GridPoint]:
    """Every grid point fitted on `train`, early-stopped and scored (ROC-AUC) on `valid`; best first."""
    from sklearn.metrics import roc_auc_score

    points = []
    for params in grid:
        started = time.perf_counter()
        trees = fit_trees(*train, params, seed, valid=valid)
        p = trees.predict_proba(design_matrix(valid[0], valid[1]))[:, 1]
        points.append(
            GridPoint(
                params, best_round(trees), float(roc_auc_score(valid[2], p)), time.perf_counter() - started
            )
        )
    return sorted(points, key=lambda point: -point.valid_auc)


@dataclass(frozen=True)
class RecencyCalibration:
    """Platt scaling of the logit, fitted on the most recent days: p' = sigmoid(slope * logit(p) +
    intercept). The late rate moves from week to week (winter storms, spring), so the base rate the trees
    learned over two months is off for the next days; the last days before the holdout say by how much."""

    slope: float = 1.0
    intercept: float = 0.0

    @classmethod
    def fit(cls, labels: np.ndarray, probabilities: np.ndarray) -> RecencyCalibration:
        from sklearn.linear_model import LogisticRegression

        z = _logit(probabilities).reshape(-1, 1)
        if len(np.unique(labels)) < 2:
            return cls()
        platt = LogisticRegression(C=1e4, max_iter=1000).fit(z, labels)
        return cls(slope=float(platt.coef_[0, 0]), intercept=float(platt.intercept_[0]))

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * _logit(probabilities) + self.intercept)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype="float64"), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class BoostedModel:
    """Preprocessing, trees and calibration: what a boosted challenger saves and serving loads."""

    preprocessor: Preprocessor
    trees: object  # a fitted HistGradientBoostingClassifier
    calibration: RecencyCalibration = field(default_factory=RecencyCalibration)
    params: TreeParams = field(default_factory=TreeParams)
    iterations: int = 0

    def predict_arrays(self, codes: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        raw = self.trees.predict_proba(design_matrix(codes, numbers))[:, 1]
        return self.calibration.apply(raw)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_arrays(*self.preprocessor.transform(frame))

    def save(self, folder: Path) -> Path:
        import joblib

        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.trees, folder / TREES_FILE)
        (folder / PREPROCESSING_FILE).write_text(json.dumps(self.preprocessor.to_dict(), indent=1))
        meta = {"calibration": asdict(self.calibration), "params": self.params.to_dict(),
                "iterations": self.iterations}  # fmt: skip
        (folder / META_FILE).write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder: Path) -> BoostedModel:
        import joblib

        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        return cls(
            preprocessor=Preprocessor.from_dict(json.loads((folder / PREPROCESSING_FILE).read_text())),
            # Our own file, written by the training step that logged it with the model.
            trees=joblib.load(folder / TREES_FILE),
            calibration=RecencyCalibration(**meta["calibration"]),
            params=TreeParams.from_dict(meta["params"]),
            iterations=int(meta["iterations"]),
        )


@dataclass
class BoostedFit:
    model: BoostedModel
    # The calibrated probabilities of the model fitted on the training days alone, on the validation
    # days: out of sample, so the decision threshold is chosen on them.
    valid_probabilities: np.ndarray
    seconds: float


def fit_boosted(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    recent: np.ndarray,
    categorical: list[str],
    numeric: list[str],
    labels: tuple[np.ndarray, np.ndarray],
    params: TreeParams,
    iterations: int,
    seed: int,
) -> BoostedFit:
    """The chosen configuration refitted on train + valid, calibrated on the most recent days.

    1. Fitted on `train` alone (the configuration's rounds, chosen on validation), it predicts the
       validation days out of sample; the Platt calibration is fitted on the `recent` ones (a mask over
       `valid`: the last days before the holdout, whose late rate is the nearest to what comes next).
    2. Refitted with the same rounds on train + valid (preprocessing too), it learns the 14 most recent
       days as well; the calibration of step 1 is applied to it.
    `labels` are (train, valid) labels: a negative control passes permuted ones."""
    started = time.perf_counter()
    prep = Preprocessor.fit(train, categorical, numeric)
    first = fit_trees(*prep.transform(train), labels[0], params, seed, iterations=iterations)
    valid_raw = first.predict_proba(design_matrix(*prep.transform(valid)))[:, 1]
    calibration = RecencyCalibration.fit(labels[1][recent], valid_raw[recent])
    both = pd.concat([train, valid], ignore_index=True)
    prep_both = Preprocessor.fit(both, categorical, numeric)
    trees = fit_trees(*prep_both.transform(both), np.concatenate(labels), params, seed, iterations=iterations)
    model = BoostedModel(prep_both, trees, calibration, params, iterations)
    return BoostedFit(model, calibration.apply(valid_raw), time.perf_counter() - started)
