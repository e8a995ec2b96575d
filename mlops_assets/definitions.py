"""The one Definitions object of the code location, assembled lazily.

`dagster dev`, `dagster asset materialize -m mlops_assets.definitions` and `dg` call `defs()`.
Heavy libraries are imported inside the asset bodies, never here. The profile (MLOPS_PROFILE:
`local`, the default, or `production`) is read when the definitions are built, not at import.
"""

from __future__ import annotations

import functools
import os

import dagster as dg


@functools.cache
def build_definitions(profile: str | None = None) -> dg.Definitions:
    from mlops_assets.defs.features.definitions import build_definitions as features
    from mlops_assets.defs.features.feast_definitions import build_definitions as feature_store
    from mlops_assets.defs.ingestion.definitions import build_definitions as ingestion
    from mlops_assets.defs.monitoring.definitions import build_definitions as monitoring
    from mlops_assets.defs.predictions.definitions import build_definitions as predictions
    from mlops_assets.defs.training.definitions import build_definitions as training
    from mlops_assets.defs.transform.definitions import build_definitions as transform
    from mlops_assets.lib.automation import build_automation_sensor
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.profiles import build_resources

    settings = load_settings() if profile is None else load_settings({**os.environ, "MLOPS_PROFILE": profile})
    return dg.Definitions.merge(
        ingestion(),
        transform(settings),
        features(settings),
        feature_store(settings),
        training(settings),
        predictions(),
        monitoring(),
        dg.Definitions(
            resources=build_resources(settings),
            sensors=[build_automation_sensor()],
            # Locally, the steps of a run share one process and its imports (dbt, Spark, Feast, MLflow,
            # Evidently: 30 s and more if each step paid them again); production keeps one process per
            # step, which its run launcher spreads out.
            executor=dg.in_process_executor if settings.profile == "local" else None,
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
