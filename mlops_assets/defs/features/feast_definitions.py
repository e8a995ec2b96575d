"""Definitions of the Feast part of the features stage: its assets and the `feast` resource."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.features.feast_assets import build_feast_assets, feast_resource
from mlops_assets.lib.settings import Settings, load_settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Assets feature_views, online_store, training_set and {"feast": FeastResource} for the profile.

    The training set also needs the `lake` resource (mlops_assets.resources.profiles.build_resources).
    """
    settings = settings or load_settings()
    return dg.Definitions(assets=build_feast_assets(), resources={"feast": feast_resource(settings)})
