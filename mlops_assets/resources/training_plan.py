"""How the training stage splits a training set and where it keeps scratch files."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field


class TrainingPlan(dg.ConfigurableResource):
    """How every model of the stage splits the training set, so all are judged on the same rows."""

    holdout_days: int = Field(default=14, description="Last days of the window: the temporal holdout.")
    valid_days: int = Field(default=14, description="Days before the holdout: early stopping and tuning.")
    seed: int = Field(default=0, description="Seed of weights, batches, trial sampling and baselines.")
    home: str = Field(description="MLOPS_HOME: scratch space for model bundles and Ray results.")

    def scratch(self, *parts: str) -> Path:
        path = Path(self.home).joinpath("scratch", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path
