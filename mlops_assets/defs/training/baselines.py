"""models/baselines: logistic regression and HistGradientBoosting on the same columns and split; the trees
choose their configuration from a small grid by validation ROC-AUC (they are the gate's floor)."""

import time
from typing import Any

import dagster as dg

from mlops_assets.lib.keys import BASELINES, TRAINING_SET
from mlops_assets.lib.lineage import run_training_set
from mlops_assets.lib.records import written_metadata
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.resources.training_plan import TrainingPlan
from mlops_assets.training.baselines import SKOPS_TRUSTED, pip_requirements
from mlops_assets.training.chain import CHAIN, GROUP, OWNERS, dagster_tags
from mlops_assets.training.data import load_training_data, model_input_frame
from mlops_assets.training.records import write_training_record


@dg.asset(
    key=BASELINES,
    deps=[TRAINING_SET],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"scikitlearn", "mlflow"},
    description=(
        "Logistic regression and HistGradientBoosting on the same columns and temporal split as the "
        "PyTorch model, each an MLflow run with its scikit-learn pipeline (preprocessing included). The "
        "trees are fitted on the training days only, from a small regularised grid chosen by validation "
        "ROC-AUC (early-stopped on the validation days): the registry gate's floor, and the configuration "
        "a boosted challenger refits."
    ),
)
def baselines(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, training: TrainingPlan, lake: ObjectStore
) -> dg.MaterializeResult:
    import mlflow as mlflow_api
    from mlflow.models import infer_signature

    from mlops_assets.ml.baselines import BASELINES as KINDS
    from mlops_assets.ml.baselines import fit_baseline, predict_baseline
    from mlops_assets.ml.data import LABEL
    from mlops_assets.ml.metrics import classification_metrics

    resolved = run_training_set(context, lake, CHAIN)
    data = load_training_data(lake, training.holdout_days, training.valid_days, resolved.identity)
    experiment_id = mlflow.activate()
    train = model_input_frame(data.split.train, data.categorical, data.numeric).assign(
        **{LABEL: data.split.train[LABEL].to_numpy()}
    )
    valid_inputs = model_input_frame(data.split.valid, data.categorical, data.numeric)
    valid = valid_inputs.assign(**{LABEL: data.split.valid[LABEL].to_numpy()})
    record: dict[str, Any] = {"training_set": data.info, "models": {}}
    for kind in KINDS:
        started = time.perf_counter()
        pipeline, grid = fit_baseline(
            kind, train, valid, data.categorical, data.numeric, LABEL, seed=training.seed
        )
        seconds = time.perf_counter() - started
        probabilities = predict_baseline(pipeline, valid_inputs)
        metrics = {f"val_{k}": v for k, v in classification_metrics(valid[LABEL], probabilities).items()}
        tags = {**dagster_tags(context), **data.lineage_tags(), "model_family": kind}
        with mlflow_api.start_run(experiment_id=experiment_id, run_name=kind, tags=tags) as run:
            mlflow_api.log_params({k: v for k, v in pipeline[-1].get_params().items() if v is not None})
            mlflow_api.log_metrics({**metrics, "fit_seconds": seconds})
            info = mlflow_api.sklearn.log_model(
                pipeline,
                name="model",
                signature=infer_signature(valid_inputs.head(5), probabilities[:5]),
                input_example=valid_inputs.head(5),
                pyfunc_predict_fn="predict_proba",
                # MLflow saves scikit-learn models with skops, which loads only types it is told to trust.
                skops_trusted_types=SKOPS_TRUSTED,
                pip_requirements=pip_requirements(),
            )
            if grid:
                mlflow_api.log_dict({"grid": grid}, "grid.json")
        record["models"][kind] = {"run_id": run.info.run_id, "model_uri": info.model_uri, **metrics}
        if grid:  # best first: the chosen configuration and its rounds, for a boosted challenger's refit
            record["models"][kind]["grid"] = grid
        context.log.info(f"{kind}: validation ROC-AUC {metrics['val_roc_auc']:.4f} in {seconds:.1f} s")
    written = write_training_record(lake, BASELINES, record, context)
    return dg.MaterializeResult(
        metadata={
            **{
                f"{k}/val_roc_auc": dg.MetadataValue.float(round(v["val_roc_auc"], 4))
                for k, v in record["models"].items()
            },
            **{
                f"{k}/mlflow_run": mlflow.run_url(experiment_id, v["run_id"])
                for k, v in record["models"].items()
            },
            **{
                f"{k}/grid": dg.MetadataValue.json(v["grid"])
                for k, v in record["models"].items()
                if "grid" in v
            },
            **resolved.metadata(),
            **written_metadata(written),
        }
    )
