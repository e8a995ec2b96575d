"""Which model family becomes the challenger, and the days its calibration learns from.

The training graph trains two families on the same split: the PyTorch network (tuned by Ray Tune) and
gradient-boosted trees (the configuration `models/baselines` chose from its grid). Both are judged on the
validation days, never on the holdout, which stays the evaluation's and the gate's alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PYTORCH = "pytorch_tabular"
TREES = "gradient_boosting"
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
