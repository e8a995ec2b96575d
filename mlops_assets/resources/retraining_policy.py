"""When the platform retrains on its own: the thresholds the retraining sensor and schedule compare with
the monitoring records (see docs/loop.md)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class RetrainingPolicy(dg.ConfigurableResource):
    """When the platform retrains on its own. Thresholds are compared with the monitoring records."""

    drift_share: float = Field(
        default=0.25,
        description="A day counts as drifted when at least this share of features drifted (January-March "
        "2013 against a January-February champion: 0 to 0.23 per day, storms included).",
    )
    drift_days: int = Field(default=3, description="Drifted days in a row (the latest ones) that trigger.")
    auc_drop: float = Field(
        default=0.05,
        description="Trigger when the mean daily ROC-AUC of the last `performance_days` is below the "
        "champion's holdout ROC-AUC by this much.",
    )
    performance_days: int = Field(default=7, description="Days averaged for the ROC-AUC rule.")
    cooldown_days: int = Field(
        default=14, description="New data days needed after the champion's window and after the last request."
    )
    floor_days: int = Field(
        default=28, description="The schedule retrains when the champion's window ends this many days back."
    )
    window_days: int = Field(
        default=365,
        description="Length of the moving training window, capped at the first data day. A year keeps the "
        "last winter in December's model (bench/loop_bench.py, docs/loop.md: 90 days served December "
        "0.045 below the never-retrained January-March champion).",
    )
