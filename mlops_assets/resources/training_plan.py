"""How the training stage splits a training set, which model family it trains, and where it keeps scratch
files."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

# The trees' family name, here rather than in training/challenger.py (numpy, pandas): resources stay light.
TREES = "gradient_boosting"


class TrainingPlan(dg.ConfigurableResource):
    """How every model of the stage splits the training set, so all are judged on the same rows, and
    which family the challenger is: one setting that the tuning step and the model step both read."""

    holdout_days: int = Field(default=14, description="Last days of the window: the temporal holdout.")
    valid_days: int = Field(default=14, description="Days before the holdout: early stopping and tuning.")
    seed: int = Field(default=0, description="Seed of weights, batches, trial sampling and baselines.")
    home: str = Field(description="MLOPS_HOME: scratch space for model bundles and Ray results.")
    family: str = Field(
        default=TREES,
        description=(
            "The challenger's model family. `gradient_boosting` (default): boosted trees of the baselines' "
            "grid, and Ray Tune does not run (it tunes the network only); `pytorch_tabular`: the network "
            "with Ray Tune's configuration; `auto`: both are trained and the one with the higher "
            "validation ROC-AUC is kept (Jan-Mar 2013: network 0.7627 on validation, 0.717 on the "
            "holdout; trees 0.7544 and 0.737: the network's figure is optimistic, its epochs and "
            "ensemble chosen on the same days)."
        ),
    )

    def trains_network(self) -> bool:
        """Whether the model step may train the network, so that tuning it is worth its time."""
        return self.family != TREES

    def scratch(self, *parts: str) -> Path:
        path = Path(self.home).joinpath("scratch", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path
