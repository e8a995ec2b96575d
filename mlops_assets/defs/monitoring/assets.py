"""The monitoring stage: is the data still what the champion learned from, and is it still right?

monitoring/drift_report       daily; Evidently DataDriftPreset of the day's model inputs and predictions
                              against the champion's training data; per-feature scores and a page of
                              them (Evidently's HTML report on demand: `mlops report html`)
monitoring/model_performance  daily, once fct_flights has the day's outcomes; Evidently
                              ClassificationPreset and the evaluation's own metrics for that day

Each writes `monitoring/{asset}/{day}.json` (and `.html`) to the lake, stamped with the materialization
that wrote it; the retraining sensor reads those records. The logic is in `mlops_assets/monitoring/`.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from mlops_assets.defs.monitoring.shadow_comparison import shadow_comparison
from mlops_assets.lib.automation import on_new_data
from mlops_assets.lib.calendar import daily_partitions
from mlops_assets.lib.keys import (
    BATCH_PREDICTIONS,
    DRIFT_REPORT,
    FCT_FLIGHTS,
    ML_OWNERS,
    MODEL_PERFORMANCE,
    TRAINING_SET,
)
from mlops_assets.lib.records import consumed_metadata, write_record, written_metadata
from mlops_assets.monitoring.drift import (
    DriftThresholds,
    drift_metadata,
    drift_of_day,
    load_reference,
    require_champion,
)
from mlops_assets.monitoring.performance import performance_metadata, performance_of_day, read_labels
from mlops_assets.monitoring.records import (
    by_day_table,
    partition_days,
    predictions_summaries,
    record_key,
)
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.resources.training_plan import TrainingPlan
from mlops_assets.resources.warehouse import Warehouse

GROUP = "monitoring"
OWNERS = ML_OWNERS


class MonitoringConfig(dg.Config):
    reference_rows: int = Field(
        default=5000, description="Rows sampled (seeded) from the champion's training set as the reference."
    )
    numeric_threshold: float = Field(
        default=DriftThresholds.numeric_threshold,
        description="A numeric feature drifted when the day's distribution is at least this many reference "
        "standard deviations away (normed Wasserstein). Evidently's 0.1 suits large batches; a single "
        "day's weather is always 0.1 away from weeks of it.",
    )
    categorical_threshold: float = Field(
        default=DriftThresholds.categorical_threshold,
        description="A category drifted at this Jensen-Shannon distance or more.",
    )


def write_day(
    context: dg.AssetExecutionContext, lake: ObjectStore, body: dict[str, Any], metadata: dict[str, Any]
) -> None:
    """The day's record, stamped with this materialization, and that day's metadata naming it and the
    batch predictions it was computed from."""
    day = body["day"]
    record = write_record(lake, record_key(context.asset_key, day), body, context, partition=day)
    consumed = consumed_metadata(predictions_summaries(lake, day))
    context.add_asset_metadata({**metadata, **written_metadata(record), **consumed}, partition_key=day)


@dg.asset(
    key=DRIFT_REPORT,
    deps=[BATCH_PREDICTIONS, TRAINING_SET],
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    owners=OWNERS,
    kinds={"evidently", "html"},
    automation_condition=on_new_data(ignore_updates_of=[TRAINING_SET]),
    description=(
        "Evidently 0.7 DataDriftPreset: the day's model inputs (as batch_predictions scored them) against "
        "a seeded sample of the champion's training set, plus the drift of the predicted probability. "
        "Per-feature drift scores, the share of drifted features and the prediction drift are metadata "
        "(charted over the days in the UI); `monitoring/drift_report/{day}.html` in the lake is the day's "
        "page (every feature's score), and `mlops report html monitoring/drift_report {day}` renders "
        "Evidently's interactive report in its place."
    ),
)
def drift_report(
    context: dg.AssetExecutionContext, config: MonitoringConfig, mlflow: MlflowResource, lake: ObjectStore
) -> dg.MaterializeResult:
    champion = require_champion(mlflow)
    reference = load_reference(lake, mlflow, champion, config.reference_rows)  # once for all the days
    thresholds = DriftThresholds(config.numeric_threshold, config.categorical_threshold)
    records = []
    days = partition_days(context)
    for number, day in enumerate(days, start=1):  # each day's record as soon as it is known (the sensor)
        records.append(drift_of_day(lake, reference, day, thresholds))
        write_day(context, lake, records[-1], drift_metadata(records[-1]))
        context.log.info(
            f"{day}: drift share {records[-1]['drift_share']:.3f}, prediction drift "
            f"{records[-1]['prediction_drift']:.3f} ({number}/{len(days)} days)"
        )
    rows = len(reference.frame)
    metadata: dict[str, Any] = {
        "reference": f"champion v{champion.version}: {champion.training_set_key} ({rows} rows)",
    }
    if len(records) > 1:
        metadata["by_day"] = by_day_table(
            [
                {
                    "day": r["day"],
                    "drift_share": r["drift_share"],
                    "prediction_drift": r["prediction_drift"],
                    "drifted": ", ".join(r["drifted"][:6]),
                }
                for r in records
            ],
            ".3f",
        )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=MODEL_PERFORMANCE,
    deps=[BATCH_PREDICTIONS, FCT_FLIGHTS],
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    owners=OWNERS,
    kinds={"evidently", "html"},
    automation_condition=on_new_data(),
    description=(
        "How right the champion was on the day, once fct_flights has the day's outcomes (cancelled and "
        "diverted flights have no label and are left out): ROC-AUC, PR-AUC, log loss, Brier and ECE as in "
        "models/model_evaluation, so the two can be compared, and Evidently's ClassificationPreset at the "
        "model's decision threshold (HTML in `monitoring/model_performance/{day}.html`)."
    ),
)
def model_performance(
    context: dg.AssetExecutionContext, training: TrainingPlan, warehouse: Warehouse, lake: ObjectStore
) -> dg.MaterializeResult:
    scratch = training.scratch("evidently", context.run.run_id)
    records = []
    days = partition_days(context)
    for number, day in enumerate(days, start=1):
        records.append(performance_of_day(lake, read_labels(warehouse, day), day, scratch))
        write_day(context, lake, records[-1], performance_metadata(records[-1]))
        roc_auc = records[-1]["metrics"].get("roc_auc")
        context.log.info(
            f"{day}: ROC-AUC {roc_auc if roc_auc is None else round(roc_auc, 4)} ({number}/{len(days)} days)"
        )
    metadata: dict[str, Any] = {}
    if len(records) > 1:
        columns = ["roc_auc", "pr_auc", "log_loss", "ece", "rows"]
        metadata["by_day"] = by_day_table(
            [
                {"day": r["day"], "version": r["model_version"], **{c: r["metrics"].get(c) for c in columns}}
                for r in records
            ],
            ".4f",
        )
    return dg.MaterializeResult(metadata=metadata)


def build_monitoring_assets() -> list[dg.AssetsDefinition]:
    return [drift_report, model_performance, shadow_comparison]
