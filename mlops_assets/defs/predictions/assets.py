"""The serving stage's batch side: every flight of a day scored by the champion.

predictions/batch_predictions  daily; the day's scheduled flights (from the Feast schedule view's files),
                               their features joined point-in-time by Feast at each flight's prediction
                               time (exactly as the training set was), scored by the `champion`; each row
                               keeps the model version and decision threshold that produced it.

The scoring itself, and where the rows and each day's summary record go in the lake, is
`mlops_assets/serving/batch.py`.
"""

import time

import dagster as dg
from pydantic import Field

from mlops_assets.lib.automation import on_new_data
from mlops_assets.lib.calendar import daily_partitions, window_days
from mlops_assets.lib.keys import BATCH_PREDICTIONS, FEATURE_VIEWS, FLIGHT_FEATURES, ML_OWNERS, REGISTERED
from mlops_assets.lib.records import write_record, written_metadata
from mlops_assets.resources.feature_store import FeastResource
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.serving.batch import (
    ENTITY_COLUMNS,
    day_metadata,
    day_summary,
    predictions_key,
    scheduled_flights,
    score_day,
    summary_key,
    with_challenger,
)

GROUP = "serving"
OWNERS = ML_OWNERS
COMPLETE = "every_flight_scored"


class BatchPredictionsConfig(dg.Config):
    shadow: bool = Field(
        default=False,
        description=(
            "Also score every flight with the `challenger` (when it is another version than the champion) "
            "and keep its probability beside the champion's (`challenger_probability_late`, "
            "`challenger_version`): shadow evidence for days scored in a backfill. The answer of record "
            "stays the champion's."
        ),
    )


def load_scorer(feast, mlflow: MlflowResource, info, entity_df):
    """(pyfunc, feature service, Feast's point-in-time features for `entity_df`) of a registered version."""
    import mlflow as mlflow_api

    model = mlflow_api.pyfunc.load_model(info.model_uri)
    service = mlflow.client().get_run(info.run_id).data.tags.get("feature_service", "flight_delay_v1")
    features = feast.historical_features(entity_df, service) if len(entity_df) else entity_df
    return model, service, features


def shadow_scorer(context, feast, mlflow: MlflowResource, champion, entity_df, service, features):
    """The challenger's (info, pyfunc, features), or None when there is no challenger other than the
    champion. Its own feature service's join when it differs (same flights, same prediction times)."""
    from mlops_assets.training.registry import CHALLENGER, champion_info

    challenger = champion_info(mlflow.client(), mlflow.model_name, alias=CHALLENGER)
    if challenger is None or challenger.version == champion.version:
        context.log.info("shadow: no challenger other than the champion; the champion scores alone")
        return None
    model, own_service, own = load_scorer(feast, mlflow, challenger, entity_df)
    context.log.info(f"shadow: challenger v{challenger.version} ({own_service}) scores beside the champion")
    return challenger, model, (features if own_service == service else own)


@dg.asset(
    key=BATCH_PREDICTIONS,
    deps=[FLIGHT_FEATURES, FEATURE_VIEWS, REGISTERED],
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    owners=OWNERS,
    kinds={"feast", "mlflow", "pytorch", "parquet"},
    # History is not rewritten: a new champion scores the days that come after it, not the past.
    automation_condition=on_new_data(ignore_updates_of=[REGISTERED, FEATURE_VIEWS]),
    check_specs=[
        dg.AssetCheckSpec(
            COMPLETE,
            asset=BATCH_PREDICTIONS,
            blocking=True,
            description="Every scheduled flight of the day got a probability from exactly one model version.",
        )
    ],
    description=(
        "Every scheduled flight of the day scored by the `champion` of the MLflow registry. Its features are "
        "Feast's point-in-time join at the flight's prediction time (scheduled departure - 2 h), the same "
        "join that built the training set, so batch scores have no training/serving skew. Each row keeps "
        "the model version, its decision threshold and the model inputs: `predictions/batch/{day}.parquet`; "
        "the day's counts, stamped with this materialization, in `predictions/summary/{day}.json`. With "
        "`shadow: true` the `challenger` scores the same flights beside it (shadow evidence for "
        "monitoring/shadow_comparison)."
    ),
)
def batch_predictions(
    context: dg.AssetExecutionContext,
    config: BatchPredictionsConfig,
    feast: FeastResource,
    mlflow: MlflowResource,
    lake: ObjectStore,
) -> dg.MaterializeResult:
    import pandas as pd

    from mlops_assets.training.registry import champion_info

    started = time.perf_counter()
    window = context.partition_time_window
    days = window_days(window)
    champion = champion_info(mlflow.client(), mlflow.model_name)
    if champion is None:
        raise dg.Failure(f"{mlflow.model_name} has no champion: materialize models/registered_model first")
    flights = pd.concat([scheduled_flights(lake, day).assign(_day=day) for day in days], ignore_index=True)
    entity_df = flights[[*ENTITY_COLUMNS, "event_timestamp"]]
    model, service, features = load_scorer(feast, mlflow, champion, entity_df)
    shadow = None
    if config.shadow:
        shadow = shadow_scorer(context, feast, mlflow, champion, entity_df, service, features)
    summaries = []
    for number, (day, part) in enumerate(flights.groupby("_day", sort=True), start=1):
        scored = score_day(part.drop(columns="_day"), features, champion, model)
        if shadow is not None:
            challenger, challenger_model, challenger_features = shadow
            beside = score_day(part.drop(columns="_day"), challenger_features, challenger, challenger_model)
            scored = with_challenger(scored, beside, challenger.version)
        lake.write_parquet(predictions_key(day), scored.reset_index(drop=True))
        summaries.append(day_summary(day, scored))
        record = write_record(lake, summary_key(day), summaries[-1], context, partition=day.isoformat())
        context.add_asset_metadata(
            {**day_metadata(summaries[-1], lake.uri(predictions_key(day))), **written_metadata(record)},
            partition_key=day.isoformat(),
        )
        context.log.info(
            f"{day}: {summaries[-1]['flights']} flights scored, mean probability "
            f"{summaries[-1]['mean_probability']} ({number}/{len(days)} days)"
        )
    for day in set(days) - set(flights["_day"]):
        context.add_asset_metadata({"dagster/row_count": 0}, partition_key=day.isoformat())  # no flights
    unscored = int(sum(summary["unscored"] for summary in summaries))
    elapsed = time.perf_counter() - started
    context.log.info(f"scored {len(flights)} flights of {len(days)} day(s) with v{champion.version}")
    table = pd.DataFrame(summaries)
    return dg.MaterializeResult(
        # Range-wide: one champion scores the whole run; each day's counts are its own (day_metadata).
        metadata={
            "model_version": champion.version,
            "model_uri": champion.model_uri,
            "decision_threshold": dg.MetadataValue.float(round(champion.decision_threshold, 4)),
            "feature_service": service,
            "shadow_challenger_version": shadow[0].version if shadow else "none",
            "by_day": dg.MetadataValue.md(table.to_markdown(index=False)) if len(table) else "no flights",
            "seconds": dg.MetadataValue.float(round(elapsed, 2)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=COMPLETE,
                passed=unscored == 0 and len(flights) > 0,
                metadata={"flights": len(flights), "unscored": unscored, "model_version": champion.version},
            )
        ],
    )


def build_prediction_assets() -> list[dg.AssetsDefinition]:
    return [batch_predictions]
