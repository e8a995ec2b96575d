"""Definitions of the monitoring stage: drift and performance reports, and what retrains by itself."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.monitoring.assets import build_monitoring_assets
from mlops_assets.defs.monitoring.retraining import (
    RetrainingPolicy,
    build_retraining_job,
    build_retraining_schedule,
    build_retraining_sensor,
)


def build_definitions() -> dg.Definitions:
    job = build_retraining_job()
    return dg.Definitions(
        assets=build_monitoring_assets(),
        jobs=[job],
        sensors=[build_retraining_sensor(job)],
        schedules=[build_retraining_schedule(job)],
        resources={"retraining": RetrainingPolicy()},
    )
