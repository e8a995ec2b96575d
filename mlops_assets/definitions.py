"""The one Definitions object of the code location, assembled lazily.

`dagster dev`, `dagster asset materialize -m mlops_assets.definitions` and `dg` call `defs()`. Each stage
folder under `defs/` contributes its definitions, `resources.profiles` the resources of the profile
(MLOPS_PROFILE: `local`, the default, or `production`), read when the definitions are built, not at
import. Heavy libraries are imported inside the asset bodies, never here.
"""

from __future__ import annotations

import functools
import importlib
import os

import dagster as dg


@functools.cache
def build_definitions(profile: str | None = None) -> dg.Definitions:
    from mlops_assets.defs import STAGES
    from mlops_assets.lib.automation import build_automation_sensor
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.profiles import build_resources

    settings = load_settings() if profile is None else load_settings({**os.environ, "MLOPS_PROFILE": profile})
    stages = [importlib.import_module(f"mlops_assets.defs.{stage}.definitions") for stage in STAGES]
    return dg.Definitions.merge(
        *(stage.build_definitions(settings) for stage in stages),
        dg.Definitions(
            resources=build_resources(settings),
            sensors=[build_automation_sensor()],
            executor=run_executor(settings.profile),
        ),
    )


def run_executor(profile: str) -> dg.ExecutorDefinition | None:
    """Where a run's steps execute. With MLOPS_CELERY_BROKER, on dagster-celery's workers (either
    profile; mlops_assets/cluster/celery_workers.py). Otherwise, locally, in the run's own process,
    sharing its imports (dbt, Spark, Feast, MLflow, Evidently: 30 s and more if each step paid them
    again); production keeps Dagster's default, one process per step."""
    from mlops_assets.cluster.celery_workers import CELERY_BROKER_ENV, broker_from_env

    if broker_from_env():
        from dagster_celery import celery_executor

        # The URL is read from the environment where the run executes; it never shows in run config.
        return celery_executor.configured({"broker": {"env": CELERY_BROKER_ENV}, "backend": "rpc://"})
    return dg.in_process_executor if profile == "local" else None


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
