"""Retraining by itself: the job, the sensor (drift or measured quality) and the floor schedule (a cadence).

What they decide, why and on which window is `mlops_assets/monitoring/retraining.py`.
"""

import json

import dagster as dg

from mlops_assets.monitoring.retraining import (
    JOB_NAME,
    RETRAIN_SELECTION,
    SCHEDULE_NAME,
    SENSOR_NAME,
    busy_reason,
    evaluate,
    record_request,
    retraining_in_progress,
)
from mlops_assets.resources.retraining_policy import RetrainingPolicy
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource


def build_retraining_job():
    return dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.assets(*RETRAIN_SELECTION),
        description="Training set over a moving window, then tune, train, evaluate and register.",
    )


def build_retraining_sensor(job) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests retraining when the daily drift reports or the measured ROC-AUC cross the "
        "RetrainingPolicy's thresholds; run_key per champion and window, cooldown in data days.",
    )
    def retraining_sensor(
        context: dg.SensorEvaluationContext,
        lake: ObjectStore,
        mlflow: MlflowResource,
        retraining: RetrainingPolicy,
    ):
        busy = busy_reason(context.instance)
        if busy:
            return dg.SkipReason(busy)
        decision, state = evaluate(context.instance, lake, mlflow, retraining, context.cursor)
        if not decision.retrain:
            return dg.SkipReason(decision.reason)
        context.log.info(f"retraining on {decision.window}: {decision.reason}")
        record_request(lake, decision, "sensor")
        return dg.SensorResult(
            run_requests=[decision.run_request({"mlops/trigger": "sensor"})], cursor=json.dumps(state)
        )

    return retraining_sensor


def build_retraining_schedule(job) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule="0 3 * * 0",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="The floor: weekly, retrain when the champion's window ends `floor_days` or more "
        "before the latest data, whatever the drift says.",
    )
    def retraining_floor_schedule(
        context: dg.ScheduleEvaluationContext,
        lake: ObjectStore,
        mlflow: MlflowResource,
        retraining: RetrainingPolicy,
    ):
        # A weekly tick is not retried: only a retraining already running makes it wait for next week.
        if retraining_in_progress(context.instance):
            return dg.SkipReason("a retraining run is in progress")
        decision, _ = evaluate(context.instance, lake, mlflow, retraining, None, floor=True)
        if not decision.retrain:
            return dg.SkipReason(decision.reason)
        record_request(lake, decision, "schedule")
        return decision.run_request({"mlops/trigger": "schedule"})

    return retraining_floor_schedule
