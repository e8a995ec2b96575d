"""Definitions of the features stage: the Spark feature tables, and the Feast feature views, online store
and point-in-time training set."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.features.assets import build_feature_assets
from mlops_assets.defs.features.feast_assets import build_feast_assets
from mlops_assets.lib.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[*build_feature_assets(settings), *build_feast_assets()])
