"""Definitions of the features stage: the Spark feature asset and the `spark` resource.

The Spark settings are read when the definitions are built: MLOPS_SPARK_REMOTE (a Spark Connect URL,
e.g. sc://spark-connect:15002) wins over MLOPS_SPARK_MASTER (default `local[2]`). Both are passed as
EnvVar, so the run reads them, and neither is read at import time.
"""

from __future__ import annotations

import os

import dagster as dg

from mlops_assets.defs.features.assets import build_feature_assets
from mlops_assets.lib.settings import Settings, load_settings
from mlops_assets.resources.spark import SparkResource

SPARK_REMOTE_ENV = "MLOPS_SPARK_REMOTE"
SPARK_MASTER_ENV = "MLOPS_SPARK_MASTER"


def spark_resource(environ: dict[str, str] | None = None) -> SparkResource:
    env = os.environ if environ is None else environ
    if env.get(SPARK_REMOTE_ENV):
        return SparkResource(remote=dg.EnvVar(SPARK_REMOTE_ENV))
    if env.get(SPARK_MASTER_ENV):
        return SparkResource(master=dg.EnvVar(SPARK_MASTER_ENV))
    return SparkResource()


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or load_settings()
    return dg.Definitions(assets=build_feature_assets(settings), resources={"spark": spark_resource()})
