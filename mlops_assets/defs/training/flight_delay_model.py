"""models/flight_delay_model: the challenger. Gradient-boosted trees of the baselines' grid refitted on
train + validation and calibrated on the most recent days (the default), or the PyTorch network with the
tuned configuration, or whichever of the two validates better; an MLflow pyfunc either way."""

import dagster as dg
from pydantic import Field

from mlops_assets.lib.keys import BASELINES, MODEL, TRAINING_SET, TUNED
from mlops_assets.lib.lineage import require_same, run_training_set
from mlops_assets.lib.records import consumed_metadata, written_metadata
from mlops_assets.resources.compute import ComputeResource
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.resources.training_plan import TrainingPlan
from mlops_assets.training.chain import CHAIN, GPU_POOL, GROUP, OWNERS, dagster_tags
from mlops_assets.training.data import load_training_data, model_input_frame, prepared_arrays
from mlops_assets.training.records import consumed, write_training_record


class ModelConfig(dg.Config):
    max_epochs: int | None = Field(
        default=None, description="Override the tuned epoch budget (early stopping still applies)."
    )
    ensemble_size: int = Field(
        default=5,
        description=(
            "Networks of the tuned configuration from consecutive seeds, averaged (the seed alone moves a "
            "network's holdout ROC-AUC by about 0.02 here)."
        ),
    )
    calibration_days: int = Field(
        default=7,
        description=(
            "The trees' Platt calibration is fitted on these last validation days (the late rate drifts "
            "from week to week; the nearest days say the most about the next ones)."
        ),
    )
    shuffle_labels: bool = Field(
        default=False,
        description=(
            "Negative control: train on permuted labels. Such a model learns nothing, and the registry "
            "gate must refuse it; tests use it to prove that."
        ),
    )


@dg.asset(
    key=MODEL,
    deps=[TRAINING_SET, TUNED, BASELINES],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"pytorch", "scikitlearn", "mlflow"},
    pool=GPU_POOL,
    description=(
        "The challenger, of the family the `training` resource names. By default gradient-boosted trees: the "
        "configuration models/baselines chose from its grid, refitted on train + validation with the "
        "rounds chosen on validation and calibrated (Platt) on the most recent validation days. Or the "
        "PyTorch tabular model (embeddings for carrier, origin, destination, hour and weekday; an MLP over "
        "the numeric features) trained with the tuned hyperparameters, early-stopped on the validation "
        "days; `auto` trains both and keeps the better on validation. "
        "Logged to MLflow as a pyfunc that includes its preprocessing, with metrics, a signature, an "
        "input example and tags back to the Dagster run, the training window, the feature service and "
        "the training set's hash. Runs in the `gpu` pool; CUDA when present."
    ),
)
def flight_delay_model(
    context: dg.AssetExecutionContext,
    config: ModelConfig,
    compute: ComputeResource,
    mlflow: MlflowResource,
    training: TrainingPlan,
    lake: ObjectStore,
) -> dg.MaterializeResult:
    import mlflow as mlflow_api
    import torch

    from mlops_assets.ml.device import describe
    from mlops_assets.ml.metrics import f1_threshold
    from mlops_assets.training.challenger import PYTORCH, TREES, choose_family, fit_challenger_trees
    from mlops_assets.training.network import final_hyperparameters, train_network
    from mlops_assets.training.pyfunc import log_flight_delay_model

    resolved = run_training_set(context, lake, CHAIN)
    tuned_record, tuned_on = consumed(context, lake, TUNED)
    baselines_record, baselines_on = consumed(context, lake, BASELINES)
    tuned = tuned_record.body
    require_same(MODEL, resolved, {TUNED: tuned_on, BASELINES: baselines_on})
    if training.trains_network() and not tuned.get("tuned", True):
        raise dg.Failure(
            f"the model family is {training.family}, which trains the network, but "
            f"models/tuned_hyperparameters did not tune it ({tuned.get('not_tuned_because')}). "
            "Materialize models/tuned_hyperparameters with the same `training` resource first."
        )
    data = load_training_data(lake, training.holdout_days, training.valid_days, resolved.identity)
    hp = final_hyperparameters(tuned["hyperparameters"], config.max_epochs, config.ensemble_size)
    device = compute.training_device()
    context.log.info(f"training on {describe(device)}")
    trees_chosen = baselines_record.body["models"]["hist_gradient_boosting"]["grid"][0]
    experiment_id = mlflow.activate()
    tags = {
        **dagster_tags(context),
        **data.lineage_tags(),
        **({"tuning_run_id": tuned["mlflow_run_id"]} if tuned.get("mlflow_run_id") else {}),
        "device": str(device),
        "negative_control": str(config.shuffle_labels).lower(),
        # A CPU result depends on the thread count (the order of float sums): a reproduction uses it.
        "torch.num_threads": str(torch.get_num_threads()),
        "torch.version": torch.__version__,
    }
    with mlflow_api.start_run(experiment_id=experiment_id, run_name="flight_delay_model", tags=tags) as run:
        # The split's day counts, not only its spans: what `mlops model reproduce` splits a rebuilt set by.
        plan = {"plan.holdout_days": training.holdout_days, "plan.valid_days": training.valid_days}
        # The network's hyperparameters only where a network is trained: a card of trees lists the trees'.
        network_params = hp.to_dict() if training.trains_network() else {}
        mlflow_api.log_params(
            {**network_params, "seed": training.seed,
             **{f"trees.{k}": v for k, v in trees_chosen.items()}, **data.split.describe(),
             "calibration_days": config.calibration_days, **plan}
        )  # fmt: skip

        def log_epoch(metrics: dict) -> None:
            prefix = f"member{metrics['member']}/" if "member" in metrics else ""
            values = {f"{prefix}{k}": v for k, v in metrics.items() if k not in ("epoch", "member")}
            mlflow_api.log_metrics(values, step=metrics["epoch"])
            context.log.info(
                f"{prefix}epoch {metrics['epoch']}: val_auc {metrics['val_auc']:.4f} "
                f"val_loss {metrics['val_loss']:.4f}"
            )

        valid_auc = {TREES: trees_chosen["valid_auc"]}
        network = None  # trained unless the trees were asked for
        if training.trains_network():
            network = train_network(data, hp, training.seed, device, config.shuffle_labels, log_epoch)
            valid_auc[PYTORCH] = network.fit.best["val_auc"]
        result = network.fit if network is not None else None
        choice = choose_family(training.family, valid_auc)
        context.log.info(f"challenger family: {choice.family} ({choice.reason})")
        example = model_input_frame(data.split.valid.head(5), data.categorical, data.numeric)
        summary = {f"val_auc_{family}": auc for family, auc in choice.valid_auc.items()}
        if result is not None:
            summary.update(
                best_epoch=result.best_epoch,
                best_val_auc=result.best["val_auc"],
                best_val_loss=result.best["val_loss"],
                train_samples_per_second=result.samples_per_second,
                train_seconds=result.train_seconds,
            )
        if choice.family == PYTORCH and network is not None:
            summary["decision_threshold"] = network.decision_threshold
            bundle = network.bundle()
        else:
            boosted = fit_challenger_trees(
                data, trees_chosen, config.calibration_days, training.seed, config.shuffle_labels
            )
            bundle = boosted.model
            valid_labels = prepared_arrays(data)[1]["valid"][2]
            summary["decision_threshold"] = f1_threshold(valid_labels, boosted.valid_probabilities)
            summary["trees_fit_seconds"] = boosted.seconds
            summary["calibration_slope"] = bundle.calibration.slope
            summary["calibration_intercept"] = bundle.calibration.intercept
        mlflow_api.log_metrics(summary)
        mlflow_api.set_tags({"model_family": choice.family, "family_choice": choice.reason})
        folder = bundle.save(training.scratch("bundles", run.info.run_id))
        info = log_flight_delay_model(folder, example, bundle.predict(example), choice.family)
    record = {
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "experiment_id": experiment_id,
        "model_family": choice.family,
        "family_choice": choice.reason,
        "hyperparameters": hp.to_dict() if training.trains_network() else {},
        "trees": trees_chosen,
        "training_set": data.info,
        "split": data.split.describe(),
        "device": str(device),
        "negative_control": config.shuffle_labels,
        **summary,
    }
    written = write_training_record(lake, MODEL, record, context)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return dg.MaterializeResult(
        metadata={
            "mlflow_run": mlflow.run_url(experiment_id, run.info.run_id),
            "model_uri": info.model_uri,
            "model_family": choice.family,
            "family_choice": choice.reason,
            "device": describe(device),
            "val_roc_auc": dg.MetadataValue.float(round(choice.valid_auc[choice.family], 4)),
            "decision_threshold": dg.MetadataValue.float(round(summary["decision_threshold"], 4)),
            **(
                {
                    "best_epoch": dg.MetadataValue.int(result.best_epoch),
                    "network_val_log_loss": dg.MetadataValue.float(round(result.best["val_loss"], 4)),
                    "train_samples_per_second": dg.MetadataValue.float(
                        float(round(result.samples_per_second))
                    ),
                }
                if result is not None
                else {}
            ),
            **({"hyperparameters": dg.MetadataValue.json(hp.to_dict())} if training.trains_network() else {}),
            "trees": dg.MetadataValue.json(trees_chosen),
            "split": dg.MetadataValue.json(data.split.describe()),
            **resolved.metadata(),
            **written_metadata(written),
            **consumed_metadata([tuned_record, baselines_record]),
            "negative_control": config.shuffle_labels,
        }
    )
