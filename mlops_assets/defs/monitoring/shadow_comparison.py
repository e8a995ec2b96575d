"""monitoring/shadow_comparison: the champion and the challenger on the same flights of a day.

Daily, once fct_flights has the day's outcomes; the rows are the batch predictions of a run with
`shadow: true` or the service's prediction log under `mlops serve --shadow` (config `source`). Each day's
record, `monitoring/shadow_comparison/{day}.json`, is the shadow evidence that the promotion gate counts
(`shadow_days` of models/registered_model, `mlops model promote --shadow-days N`). The logic is
`mlops_assets/monitoring/shadow.py`.
"""

from typing import Any, Literal

import dagster as dg
from pydantic import Field

from mlops_assets.lib.calendar import daily_partitions
from mlops_assets.lib.keys import BATCH_PREDICTIONS, FCT_FLIGHTS, ML_OWNERS, SHADOW_COMPARISON
from mlops_assets.lib.records import write_record, written_metadata
from mlops_assets.monitoring.performance import read_labels
from mlops_assets.monitoring.records import by_day_table, partition_days, record_key
from mlops_assets.monitoring.shadow import (
    COMPARED_METRICS,
    batch_rows,
    compare_day,
    comparison_metadata,
    online_rows,
)
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.warehouse import Warehouse


class ShadowComparisonConfig(dg.Config):
    source: Literal["batch", "online"] = Field(
        default="batch",
        description=(
            "batch: the day's batch predictions (run with `shadow: true`); online: the service's "
            "prediction log under `mlops serve --shadow` (every file of the log is read)."
        ),
    )


@dg.asset(
    key=SHADOW_COMPARISON,
    deps=[BATCH_PREDICTIONS, FCT_FLIGHTS],
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="monitoring",
    owners=ML_OWNERS,
    kinds={"mlflow", "parquet"},
    description=(
        "The `challenger` beside the `champion` on the same flights of the day, once fct_flights has the "
        "outcomes: ROC-AUC, log loss, Brier and ECE of each model on exactly the same labelled rows, and "
        "the differences (challenger minus champion), charted over the days in the UI. The rows are the "
        "shadow scores of batch predictions (`shadow: true`) or of the service (`mlops serve --shadow`). "
        "Each day's record, `monitoring/shadow_comparison/{day}.json`, is the evidence the promotion gate "
        "counts when it is configured to (`shadow_days`)."
    ),
)
def shadow_comparison(
    context: dg.AssetExecutionContext,
    config: ShadowComparisonConfig,
    warehouse: Warehouse,
    lake: ObjectStore,
) -> dg.MaterializeResult:
    read = batch_rows if config.source == "batch" else online_rows
    records = []
    days = partition_days(context)
    for number, day in enumerate(days, start=1):
        records.append(compare_day(read(lake, day), read_labels(warehouse, day), day, config.source))
        key = record_key(SHADOW_COMPARISON, day)
        written = write_record(lake, key, records[-1], context, partition=day.isoformat())
        context.add_asset_metadata(
            {**comparison_metadata(records[-1]), **written_metadata(written)}, partition_key=day.isoformat()
        )
        record = records[-1]
        summary = (
            f"challenger v{record['challenger_version']} ROC-AUC {record['delta']['roc_auc']:+.4f} "
            f"vs champion v{record['champion_version']} on {record['rows']} flights"
            if record["compared"]
            else record["reason"]
        )
        context.log.info(f"{day}: {summary} ({number}/{len(days)} days)")
    metadata: dict[str, Any] = {"source": config.source}
    if len(records) > 1:
        metadata["by_day"] = by_day_table(
            [
                {
                    "day": r["day"],
                    "rows": r["rows"],
                    **{f"delta_{m}": r["delta"][m] if r["compared"] else None for m in COMPARED_METRICS},
                }
                for r in records
            ],
            ".4f",
        )
    return dg.MaterializeResult(metadata=metadata)
