"""Which model family becomes the challenger, and the days its calibration learns from.

The training graph trains two families on the same split: the PyTorch network (tuned by Ray Tune) and
gradient-boosted trees (the configuration `models/baselines` chose from its grid). Both are judged on the
validation days, never on the holdout, which stays the evaluation's and the gate's alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_assets.resources.training_plan import TREES

PYTORCH = "pytorch_tabular"
FAMILIES = (PYTORCH, TREES)
AUTO = "auto"


@dataclass(frozen=True)
class FamilyChoice:
    family: str
    valid_auc: dict[str, float]  # each family's validation ROC-AUC (fitted on the training days)
    reason: str


def choose_family(requested: str, valid_auc: dict[str, float]) -> FamilyChoice:
    """`requested` when it names a family; with `auto`, the family with the higher validation ROC-AUC
    (a tie keeps the network, the platform's own model)."""
    if requested != AUTO and requested not in FAMILIES:
        raise ValueError(f"unknown model family {requested!r}; choose {AUTO} or one of {', '.join(FAMILIES)}")
    if requested != AUTO:
        return FamilyChoice(requested, dict(valid_auc), f"{requested} was asked for")
    best = max(FAMILIES, key=lambda family: (valid_auc[family], family == PYTORCH))
    other = next(f for f in FAMILIES if f != best)
    gain = valid_auc[best] - valid_auc[other]
    return FamilyChoice(
        best,
        dict(valid_auc),
        f"validation ROC-AUC {valid_auc[best]:.4f} against {other}'s {valid_auc[other]:.4f} ({gain:+.4f})",
    )


def recent_days_mask(valid: pd.DataFrame, days: int) -> np.ndarray:
    """The rows of the last `days` local days of `valid` (all of them when it has fewer days)."""
    from mlops_assets.ml.data import local_days

    local = local_days(valid)
    unique = sorted(local.unique())
    return (local >= unique[-min(days, len(unique))]).to_numpy()


def fit_challenger_trees(
    data, trees_chosen: dict, calibration_days: int, seed: int, shuffle_labels: bool = False
):
    """The trees challenger: the configuration and rounds `models/baselines` chose, refitted on train +
    validation and calibrated on the last `calibration_days` validation days. The one routine that
    `models/flight_delay_model` and `mlops model reproduce` both call. `shuffle_labels`: the negative
    control, the training labels permuted with `seed`."""
    from mlops_assets.ml.boosting import TreeParams, fit_boosted
    from mlops_assets.training.data import prepared_arrays

    _, arrays = prepared_arrays(data)
    train_labels = arrays["train"][2]
    if shuffle_labels:
        train_labels = train_labels.copy()
        np.random.default_rng(seed).shuffle(train_labels)
    return fit_boosted(
        data.split.train,
        data.split.valid,
        recent_days_mask(data.split.valid, calibration_days),
        data.categorical,
        data.numeric,
        (train_labels, arrays["valid"][2]),
        TreeParams.from_dict(trees_chosen),
        int(trees_chosen["iterations"]),
        seed,
    )
