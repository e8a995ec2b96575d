"""Definitions of the training stage: its assets and the `mlflow`, `compute` and `training` resources."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.training.assets import build_training_assets
from mlops_assets.lib.settings import Settings, load_settings
from mlops_assets.resources.compute import ComputeResource
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.resources.training_plan import TrainingPlan

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
RAY_ADDRESS_ENV = "MLOPS_RAY_ADDRESS"


def mlflow_resource(settings: Settings) -> MlflowResource:
    """Local: a SQLite store and an artifact folder under MLOPS_HOME. Production: the MLflow server named by
    MLFLOW_TRACKING_URI (PostgreSQL backend, artifacts on S3, served through the server)."""
    if settings.profile == "production":
        return MlflowResource(tracking_uri=dg.EnvVar(TRACKING_URI_ENV))
    root = settings.home / "mlflow"
    return MlflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=(root / "artifacts").as_uri()
    )


def compute_resource(settings: Settings) -> ComputeResource:
    import os

    if settings.profile == "production" and os.environ.get(RAY_ADDRESS_ENV):
        return ComputeResource(ray_address=dg.EnvVar(RAY_ADDRESS_ENV))
    return ComputeResource()


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    return dg.Definitions(
        assets=build_training_assets(),
        resources={
            "mlflow": mlflow_resource(settings),
            "compute": compute_resource(settings),
            "training": TrainingPlan(home=str(settings.home)),
        },
    )
