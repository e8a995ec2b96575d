"""Definitions of the training stage: tuning, baselines, the model, its evaluation and registration."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.training.assets import build_training_assets
from mlops_assets.lib.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=build_training_assets())
