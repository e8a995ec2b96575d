"""models/tuned_hyperparameters: Ray Tune (ASHA) over the PyTorch model; trials are nested MLflow runs.

Only when the challenger's family may be the network (`training.family`): for the trees (the default) the
step records that nothing was tuned instead of starting Ray for trials no model uses."""

import dagster as dg
from pydantic import Field

from mlops_assets.lib.keys import TRAINING_SET, TUNED
from mlops_assets.lib.lineage import Resolved, run_training_set
from mlops_assets.lib.records import written_metadata
from mlops_assets.resources.compute import ComputeResource
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.resources.training_plan import TrainingPlan
from mlops_assets.training.chain import CHAIN, GPU_POOL, GROUP, OWNERS, dagster_tags, markdown_table
from mlops_assets.training.data import load_training_data, prepared_arrays
from mlops_assets.training.records import write_training_record


class TuningConfig(dg.Config):
    num_samples: int = Field(default=8, description="Trials (random search over the space in tuning.py).")
    max_epochs: int = Field(default=10, description="Epochs of a trial that ASHA never stops.")
    grace_period: int = Field(default=3, description="Epochs every trial gets before ASHA may stop it.")
    time_budget_s: float | None = Field(default=None, description="Stop starting trials after this long.")


@dg.asset(
    key=TUNED,
    deps=[TRAINING_SET],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"ray", "pytorch", "mlflow"},
    pool=GPU_POOL,
    description=(
        "Ray Tune random search over learning rate, width, depth, dropout, weight decay, batch size and "
        "embedding size "
        "of the PyTorch model, with ASHA early stopping, on the training days; scored on the validation "
        "days (ROC-AUC). Trials are nested MLflow runs under one `tune` run. Runs in the `gpu` pool. "
        "When the `training` resource's family is the trees (the default), no network is trained: the "
        "step records that it tuned nothing, with the training set it was asked for."
    ),
)
def tuned_hyperparameters(
    context: dg.AssetExecutionContext,
    config: TuningConfig,
    compute: ComputeResource,
    mlflow: MlflowResource,
    training: TrainingPlan,
    lake: ObjectStore,
) -> dg.MaterializeResult:
    import mlflow as mlflow_api
    import pandas as pd

    from mlops_assets.training.tuning import run_tuning, trial_runs_logger

    resolved = run_training_set(context, lake, CHAIN)
    if not training.trains_network():
        return not_tuned(context, lake, training, resolved)
    data = load_training_data(lake, training.holdout_days, training.valid_days, resolved.identity)
    prep, arrays = prepared_arrays(data)
    experiment_id = mlflow.activate()
    tags = {**dagster_tags(context), **data.lineage_tags()}
    with mlflow_api.start_run(experiment_id=experiment_id, run_name="tune", tags=tags) as parent:
        trials_logger = trial_runs_logger(
            tracking_uri=mlflow.tracking_uri,
            registry_uri=mlflow.tracking_uri,
            experiment_name=mlflow.experiment,
            tags={"mlflow.parentRunId": parent.info.run_id, **tags},
            save_artifact=False,
        )
        outcome = run_tuning(
            data={"preprocessor": prep.to_dict(), **arrays},
            compute=compute,
            num_samples=config.num_samples,
            max_epochs=config.max_epochs,
            grace_period=config.grace_period,
            seed=training.seed,
            storage_path=compute.storage_path or str(training.scratch("ray_results")),
            name=f"tune-{context.run.run_id[:8]}",
            log=context.log,
            mlflow_callback=trials_logger,
            time_budget_s=config.time_budget_s,
        )
        mlflow_api.log_params(outcome.best.to_dict())
        figures = {
            "best_val_auc": outcome.best_metrics["val_auc"],
            "trials": len(outcome.trials),
            "wall_seconds": outcome.wall_seconds,
            "ideal_seconds": outcome.ideal_seconds,
            "overhead": outcome.overhead,
        }
        mlflow_api.log_metrics(figures)
    record = {
        "hyperparameters": outcome.best.to_dict(),
        "best": outcome.best_metrics,
        "trials": outcome.trials,
        "training_set": data.info,
        "mlflow_run_id": parent.info.run_id,
        "parallelism": outcome.parallelism,
        **figures,
    }
    written = write_training_record(lake, TUNED, record, context)
    table = pd.DataFrame(
        [
            {"trial": t["trial_id"], "val_auc": t["best_val_auc"], "epochs": t["epochs"], **t["config"]}
            for t in outcome.trials
        ]
    )
    return dg.MaterializeResult(
        metadata={
            "best_hyperparameters": dg.MetadataValue.json(outcome.best.to_dict()),
            "best_val_auc": dg.MetadataValue.float(round(outcome.best_metrics["val_auc"], 4)),
            "trials": dg.MetadataValue.md(markdown_table(table)),
            "trial_count": dg.MetadataValue.int(len(outcome.trials)),
            "parallel_trials": dg.MetadataValue.int(outcome.parallelism),
            "trial_resources": dg.MetadataValue.json(compute.trial_resources()),
            "wall_s": dg.MetadataValue.float(round(outcome.wall_seconds, 2)),
            "ideal_s (trial time / parallelism)": dg.MetadataValue.float(round(outcome.ideal_seconds, 2)),
            "tune_overhead": dg.MetadataValue.float(round(outcome.overhead, 4)),
            **resolved.metadata(),
            **written_metadata(written),
            "mlflow_run": mlflow.run_url(experiment_id, parent.info.run_id),
        }
    )


def not_tuned(
    context: dg.AssetExecutionContext, lake: ObjectStore, training: TrainingPlan, resolved: Resolved
) -> dg.MaterializeResult:
    """The record of a run whose family trains no network: the model step reads the same chain (and
    checks the same training set), and refuses it if asked for the network later without tuning."""
    why = f"the challenger family is {training.family}: no network is trained, so Ray Tune did not run"
    context.log.info(why)
    record = {"tuned": False, "not_tuned_because": why, "hyperparameters": {},
              "training_set": resolved.identity.record()}  # fmt: skip
    written = write_training_record(lake, TUNED, record, context)
    return dg.MaterializeResult(
        metadata={
            "tuned": False,
            "not_tuned_because": why,
            "trial_count": dg.MetadataValue.int(0),
            **resolved.metadata(),
            **written_metadata(written),
        }
    )
