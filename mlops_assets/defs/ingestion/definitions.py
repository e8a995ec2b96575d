"""Definitions of the ingestion stage: the raw assets with their blocking checks, and the landing-zone
sensor."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.ingestion.assets import build_raw_assets
from mlops_assets.defs.ingestion.sensors import build_landing_zone_sensor
from mlops_assets.lib.calendar import daily_partitions
from mlops_assets.lib.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    partition_keys = set(daily_partitions().get_partition_keys())
    return dg.Definitions(
        assets=list(build_raw_assets()), sensors=[build_landing_zone_sensor(partition_keys)]
    )
