"""Definitions of the serving stage's batch side (the online service is `mlops serve`)."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.predictions.assets import build_prediction_assets


def build_definitions() -> dg.Definitions:
    """Uses the `feast`, `mlflow` and `lake` resources of the other stages."""
    return dg.Definitions(assets=build_prediction_assets())
