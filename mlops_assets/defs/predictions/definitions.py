"""Definitions of the serving stage's batch side (the online service is `mlops serve`)."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.predictions.assets import build_prediction_assets
from mlops_assets.lib.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=build_prediction_assets())
