"""Where training runs: the torch device and Ray (a local Ray, or a cluster at `ray_address`)."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from mlops_assets.lib.settings import Settings, env_setting

RAY_ADDRESS_ENV = "MLOPS_RAY_ADDRESS"


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


def compute_resource(settings: Settings) -> ComputeResource:
    """MLOPS_RAY_ADDRESS (a Ray cluster: `host:port` of its GCS, `ray://host:10001`, or `auto`) in either
    profile, as MLOPS_SPARK_REMOTE is for Spark: `mlops cluster up` serves the local profile one."""
    del settings  # the same rule in both profiles
    return ComputeResource(ray_address=env_setting(RAY_ADDRESS_ENV))
