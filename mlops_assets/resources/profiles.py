"""The resources of a profile: the same keys and interfaces in `local` and `production`.

This is the one place an implementation is picked per profile. Each resource module holds its local and
production implementations and a factory `<name>_resource(settings)`; production settings follow one
rule, `lib.settings.env_setting`: an EnvVar where the variable is set, else the documented default.
"""

from __future__ import annotations

from typing import Any

from mlops_assets.lib.settings import Settings


def build_resources(settings: Settings) -> dict[str, Any]:
    from mlops_assets.resources.compute import compute_resource
    from mlops_assets.resources.dbt import dbt_resource
    from mlops_assets.resources.feature_store import feast_resource
    from mlops_assets.resources.retraining_policy import RetrainingPolicy
    from mlops_assets.resources.spark import spark_resource
    from mlops_assets.resources.storage import object_stores
    from mlops_assets.resources.tracking import mlflow_resource
    from mlops_assets.resources.training_plan import TrainingPlan
    from mlops_assets.resources.warehouse import warehouse_resource

    stores = object_stores(settings)
    return {
        **stores,
        "warehouse": warehouse_resource(settings, stores["lake"]),
        "dbt": dbt_resource(settings),
        "spark": spark_resource(settings),
        "feast": feast_resource(settings),
        "mlflow": mlflow_resource(settings),
        "compute": compute_resource(settings),
        "training": TrainingPlan(home=str(settings.home)),
        "retraining": RetrainingPolicy(),
    }
