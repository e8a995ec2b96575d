"""Definitions of the monitoring stage: drift and performance reports, and what retrains by itself."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.monitoring.assets import build_monitoring_assets
from mlops_assets.defs.monitoring.retraining import (
    build_retraining_job,
    build_retraining_schedule,
    build_retraining_sensor,
)
from mlops_assets.lib.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    job = build_retraining_job()
    return dg.Definitions(
        assets=build_monitoring_assets(),
        jobs=[job],
        sensors=[build_retraining_sensor(job)],
        schedules=[build_retraining_schedule(job)],
    )
