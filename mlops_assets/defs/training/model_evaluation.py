"""models/model_evaluation: the new model, the champion and the baselines on the same temporal holdout."""

import dagster as dg
from pydantic import Field

from mlops_assets.lib.keys import BASELINES, EVALUATION, MODEL
from mlops_assets.lib.lineage import require_same, run_training_set
from mlops_assets.lib.records import consumed_metadata, written_metadata
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.resources.training_plan import TrainingPlan
from mlops_assets.training.chain import CHAIN, GROUP, OWNERS, markdown_table
from mlops_assets.training.data import load_training_data
from mlops_assets.training.evaluation import (
    EVALUATION_ARTIFACTS,
    LEAKAGE_CEILING,
    calibration_plot,
    holdout_inputs,
    score_models,
)
from mlops_assets.training.records import consumed, write_training_record

PLAUSIBLE = "plausible_holdout_metrics"


class EvaluationConfig(dg.Config):
    leakage_ceiling: float = Field(
        default=LEAKAGE_CEILING,
        description="A holdout ROC-AUC above this is treated as leakage, not skill (blocks registration).",
    )


@dg.asset(
    key=EVALUATION,
    deps=[MODEL, BASELINES],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"mlflow", "scikitlearn"},
    check_specs=[
        dg.AssetCheckSpec(
            PLAUSIBLE,
            asset=EVALUATION,
            blocking=True,
            description="Every holdout row scored, ROC-AUC defined and below the leakage ceiling "
            "(a weak model passes: refusing it is the registry gate's job).",
        )
    ],
    description=(
        "The new model, the current champion and both baselines on the same temporal holdout (the last "
        "days of the window, never seen in training or tuning): ROC-AUC, PR-AUC, log loss, Brier score, "
        "expected calibration error, a calibration plot and per-carrier and per-origin metrics, logged to "
        "the new model's MLflow run. A blocking check stops registration when the figures are implausible."
    ),
)
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: EvaluationConfig,
    mlflow: MlflowResource,
    training: TrainingPlan,
    lake: ObjectStore,
) -> dg.MaterializeResult:
    import mlflow as mlflow_api
    import numpy as np
    import pandas as pd

    from mlops_assets.ml.data import LABEL
    from mlops_assets.ml.metrics import calibration_table, classification_metrics, metrics_by_group

    resolved = run_training_set(context, lake, CHAIN)
    model_record, model_on = consumed(context, lake, MODEL)
    baselines_record, baselines_on = consumed(context, lake, BASELINES)
    # The holdout is the last days of the run's set: scoring a model from another set on it could score
    # it on days it learned from.
    require_same(EVALUATION, resolved, {MODEL: model_on, BASELINES: baselines_on})
    data = load_training_data(lake, training.holdout_days, training.valid_days, resolved.identity)
    holdout = data.split.holdout
    inputs, labels = holdout_inputs(data)
    # The models load through the mlflow module's own store: point it at this run's before loading (a run
    # of this step alone has nothing else that would).
    mlflow.activate()
    scores = score_models(mlflow, inputs, model_record.body, baselines_record.body)
    metrics = {name: classification_metrics(labels, p) for name, (p, _) in scores.items()}
    comparison = pd.DataFrame([{"model": name, **m} for name, m in metrics.items()])
    by_group = {
        group: pd.concat(
            [
                metrics_by_group(holdout.assign(p=p), group, LABEL, "p").assign(model=name)
                for name, (p, _) in scores.items()
            ],
            ignore_index=True,
        )
        for group in ("carrier", "origin")
    }
    by_carrier = by_group["carrier"]
    curves = {name: calibration_table(labels, p) for name, (p, _) in scores.items()}
    folder = training.scratch("evaluation", context.run.run_id)
    plot = folder / "calibration.png"
    calibration_plot(curves, plot)
    # The tables behind the figures, as data: the model card draws its calibration plot from them.
    files = [plot, folder / "holdout_comparison.csv", folder / "holdout_calibration.csv"]
    comparison.to_csv(files[1], index=False)
    pd.concat([t.assign(model=name) for name, t in curves.items()]).to_csv(files[2], index=False)
    for group, table in by_group.items():
        files.append(folder / f"holdout_by_{group}.csv")
        table.to_csv(files[-1], index=False)

    model = scores["candidate"][1]
    mlflow.activate()
    with mlflow_api.start_run(run_id=model["run_id"]):
        mlflow_api.log_metrics({f"holdout_{k}": v for k, v in metrics["candidate"].items()})
        for file in files:
            mlflow_api.log_artifact(str(file), artifact_path=EVALUATION_ARTIFACTS)
    client = mlflow.client()
    for kind, (_, entry) in scores.items():
        if kind not in ("candidate", "champion"):
            for key, value in metrics[kind].items():
                client.log_metric(entry["run_id"], f"holdout_{key}", value)

    candidate = metrics["candidate"]
    problems = []
    if not np.isfinite(scores["candidate"][0]).all():
        problems.append("some holdout rows got no probability")
    if not np.isfinite(candidate["roc_auc"]):
        problems.append("ROC-AUC is undefined: the holdout has a single class")
    if candidate["roc_auc"] > config.leakage_ceiling:
        problems.append(f"ROC-AUC {candidate['roc_auc']:.4f} > {config.leakage_ceiling}: suspect leakage")
    record = {
        "candidate": {"run_id": model["run_id"], "model_uri": model["model_uri"]},
        "champion_version": scores["champion"][1]["version"] if "champion" in scores else None,
        "metrics": metrics,
        "holdout": data.split.describe()["holdout_days"],
        "holdout_rows": len(holdout),
        "training_set": data.info,
        "plausible": not problems,
    }
    written = write_training_record(lake, EVALUATION, record, context)
    return dg.MaterializeResult(
        metadata={
            "holdout": f"{record['holdout']} ({len(holdout)} flights)",
            "comparison": dg.MetadataValue.md(markdown_table(comparison.drop(columns=["rows"]))),
            "by_carrier": dg.MetadataValue.md(
                markdown_table(
                    by_carrier.pivot_table(index="carrier", columns="model", values="roc_auc").reset_index()
                )
            ),
            "calibration_plot": dg.MetadataValue.path(str(plot)),
            **{
                f"{name}/roc_auc": dg.MetadataValue.float(round(m["roc_auc"], 4))
                for name, m in metrics.items()
            },
            "candidate/log_loss": dg.MetadataValue.float(round(candidate["log_loss"], 4)),
            "candidate/brier": dg.MetadataValue.float(round(candidate["brier"], 4)),
            "candidate/ece": dg.MetadataValue.float(round(candidate["ece"], 4)),
            "champion_version": str(record["champion_version"]),
            "mlflow_run": mlflow.run_url(model.get("experiment_id", ""), model["run_id"]),
            **resolved.metadata(),
            **written_metadata(written),
            **consumed_metadata([model_record, baselines_record]),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=PLAUSIBLE,
                passed=not problems,
                metadata={"problems": "; ".join(problems) or "none", "roc_auc": candidate["roc_auc"]},
            )
        ],
    )
