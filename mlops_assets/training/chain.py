"""What the training assets share: their group, owners and GPU pool, the chain of assets that carry a
run's training set (lineage.py), and how their MLflow runs and metadata point back to Dagster."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_assets.lib.keys import BASELINES, EVALUATION, ML_OWNERS, MODEL, REGISTERED, TUNED

if TYPE_CHECKING:
    import dagster as dg

GROUP = "training"
OWNERS = ML_OWNERS
GPU_POOL = "gpu"
CHAIN = [TUNED, BASELINES, MODEL, EVALUATION, REGISTERED]  # the assets that carry the run's training set


def dagster_tags(context: dg.AssetExecutionContext) -> dict[str, str]:
    return {"dagster.run_id": context.run.run_id, "dagster.asset_key": context.asset_key.to_user_string()}


def markdown_table(frame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4f")
