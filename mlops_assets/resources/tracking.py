"""MLflow tracking and model registry: a local SQLite store or an MLflow server, behind one resource.

The experiment tracker is wrapped here rather than taken from dagster-mlflow: dagster-mlflow 0.29 offers
only a function-style resource (no ConfigurableResource, so no local/production pair behind one interface),
imports mlflow when the code location loads (about 4 s), and its end-of-run hook has been reported to end
the MLflow run too early (dagster issue 21872). `mlflow` is imported inside the methods.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import dagster as dg
from pydantic import Field

from mlops_assets.lib.settings import Settings

MODEL_NAME = "flight_delay"
EXPERIMENT = "flight_delay"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
SQLITE_PREFIX = "sqlite:///"


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and model registry: a local SQLite store or an MLflow server, the same calls."""

    tracking_uri: str = Field(
        description="sqlite:///<home>/mlflow/mlflow.db locally; http://host:5000 on a server."
    )
    artifact_location: str | None = Field(
        default=None,
        description="Where a new experiment keeps artifacts (local folder); None lets the server decide.",
    )
    experiment: str = Field(default=EXPERIMENT, description="Experiment of every training run.")
    model_name: str = Field(default=MODEL_NAME, description="Registered model name.")

    def activate(self) -> str:
        """Point the mlflow module at this store and return the experiment id (created when missing)."""
        import mlflow

        create_sqlite_store(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.experiment)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return mlflow.create_experiment(self.experiment, artifact_location=self.artifact_location)
        except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent step
            return mlflow.get_experiment_by_name(self.experiment).experiment_id

    def client(self):
        from mlflow import MlflowClient

        self.activate()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        if self.tracking_uri.startswith("http"):
            return f"{self.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return (
            f"mlflow ui --backend-store-uri {self.tracking_uri}  →  experiment {experiment_id}, run {run_id}"
        )


def create_sqlite_store(tracking_uri: str) -> None:
    """Creates a missing SQLite store whole, or not at all.

    MLflow creates its tables through some thirty schema migrations; a process killed among them leaves
    a database every later run fails to migrate ("table _alembic_tmp_experiments already exists"). So
    the tables are built in a private file first and linked into place only when complete; `os.link`
    fails when another process got there first, so a store that is already in use is never replaced.
    """
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return
    path = Path(tracking_uri.removeprefix(SQLITE_PREFIX))
    if path.exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        store = SqlAlchemyStore(f"{SQLITE_PREFIX}{staged}", staged.parent.as_uri())
        store.engine.dispose()
        with contextlib.suppress(FileExistsError):
            os.link(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def mlflow_resource(settings: Settings) -> MlflowResource:
    """Local: a SQLite store and an artifact folder under MLOPS_HOME. Production: the MLflow server named by
    MLFLOW_TRACKING_URI (PostgreSQL backend, artifacts on S3, served through the server)."""
    if settings.profile == "production":
        return MlflowResource(tracking_uri=dg.EnvVar(TRACKING_URI_ENV))
    root = settings.home / "mlflow"
    return MlflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=(root / "artifacts").as_uri()
    )
