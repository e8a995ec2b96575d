"""Resources of the training stage: where MLflow is, what hardware trains, and how data is split.

The experiment tracker is wrapped here rather than taken from dagster-mlflow: dagster-mlflow 0.29 offers
only a function-style resource (no ConfigurableResource, so no local/production pair behind one interface),
imports mlflow when the code location loads (about 4 s), and its end-of-run hook has been reported to end
the MLflow run too early (dagster issue 21872). `mlflow` is imported inside the methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

MODEL_NAME = "flight_delay"
EXPERIMENT = "flight_delay"


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


class ComputeResource(dg.ConfigurableResource):
    """Which device trains and what each Ray trial asks for. `auto` takes CUDA where there is one."""

    device: str = Field(default="auto", description="`auto`, `cpu`, `cuda` or `cuda:N`.")
    ray_address: str | None = Field(
        default=None, description="None: start a local Ray; `ray://host:10001` or `auto` for a cluster."
    )
    num_cpus: int | None = Field(
        default=None, description="CPUs of the local Ray (None: all of the machine)."
    )
    cpus_per_trial: int = Field(default=1, description="CPUs (and torch threads) per Ray Tune trial.")
    gpus_per_trial: float = Field(
        default=1.0, description="GPUs per trial when training on CUDA (1: trials take turns on the device)."
    )
    storage_path: str | None = Field(default=None, description="Ray Tune results; None: <home>/ray_results.")

    def training_device(self):
        from mlops_assets.ml.device import resolve_device

        return resolve_device(self.device)

    def trial_resources(self) -> dict[str, float]:
        on_gpu = self.training_device().type == "cuda"
        return {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial if on_gpu else 0}

    def ray_init_kwargs(self) -> dict[str, Any]:
        if self.ray_address:
            return {"address": self.ray_address}
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.num_cpus:
            kwargs["num_cpus"] = self.num_cpus
        return kwargs


class TrainingPlan(dg.ConfigurableResource):
    """How every model of the stage splits the training set, so all are judged on the same rows."""

    holdout_days: int = Field(default=14, description="Last days of the window: the temporal holdout.")
    valid_days: int = Field(default=14, description="Days before the holdout: early stopping and tuning.")
    seed: int = Field(default=0, description="Seed of weights, batches, trial sampling and baselines.")
    home: str = Field(description="MLOPS_HOME: scratch space for model bundles and Ray results.")

    def scratch(self, *parts: str) -> Path:
        path = Path(self.home).joinpath("scratch", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path
