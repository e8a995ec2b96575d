"""The resources of each profile. Same keys, same interfaces; only the implementation differs."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from mlops_assets.lib.settings import Settings
from mlops_assets.resources.storage import LocalObjectStore, ObjectStore

S3_BUCKET_ENV = "MLOPS_S3_BUCKET"
S3_ENDPOINT_ENV = "MLOPS_S3_ENDPOINT_URL"
REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")


def env_setting(name: str, default: Any = None, env: Any = dg.EnvVar) -> Any:
    """`dg.EnvVar(name)` when the variable is set where the definitions are built, else `default`.

    The value itself is resolved when a run starts, so a credential or endpoint never becomes a plain
    string in the resource config the UI shows, and a run reads its own environment. `env=dg.EnvVar.int`
    for integers.
    """
    return env(name) if os.environ.get(name) else default


def build_resources(settings: Settings) -> dict[str, Any]:
    if settings.profile == "local":
        return {
            "landing_zone": LocalObjectStore(root=str(settings.landing_dir)),
            "lake": LocalObjectStore(root=str(settings.lake_dir)),
        }
    return _production_resources()


def _production_resources() -> dict[str, Any]:
    from dagster_aws.s3 import S3Resource

    from mlops_assets.resources.storage_s3 import S3ObjectStore

    # Optional settings are looked up here, when the definitions are built; secrets (AWS keys)
    # stay with boto3's own chain and never pass through our config.
    region = next((dg.EnvVar(name) for name in REGION_ENVS if os.environ.get(name)), "us-east-1")
    s3 = S3Resource(endpoint_url=env_setting(S3_ENDPOINT_ENV), region_name=region)
    bucket = dg.EnvVar(S3_BUCKET_ENV)
    return {
        "landing_zone": S3ObjectStore(s3=s3, bucket=bucket, prefix="landing"),
        "lake": S3ObjectStore(s3=s3, bucket=bucket, prefix="lake"),
    }


def resolve_store(store: ObjectStore) -> ObjectStore:
    """A resource outside a run (CLI, benchmarks): resolve EnvVars and nested resources."""
    with dg.build_resources({"store": store}) as built:
        return built.store
