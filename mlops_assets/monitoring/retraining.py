"""When to retrain, why and on which window: the decision the retraining sensor (drift or measured quality)
and the floor schedule (a cadence) share with `mlops retrain`; the job, sensor and schedule themselves are
in `defs/monitoring/retraining.py`.

Both request the same job, `retrain_model`: `features/training_set` over a window that ends at the latest
day with outcomes, then the training graph (tune, train, evaluate, register). The new version becomes
`challenger`; it replaces the champion only through the registry's gate, and serving follows the alias.

No loop: a request's run_key names the champion it would replace and the new window, so the same
retraining is never launched twice, and `cooldown_days` of new data must arrive between two retrainings
(and after the champion's own training window). Days are data days, not wall-clock days, so a replay
behaves as the live system would.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import dagster as dg

from mlops_assets.lib.calendar import FIRST_DAY
from mlops_assets.lib.keys import (
    BASELINES,
    DRIFT_REPORT,
    EVALUATION,
    FCT_FLIGHTS,
    FLIGHT_FEATURES,
    MODEL,
    MODEL_PERFORMANCE,
    REGISTERED,
    TRAINING_SET,
    TUNED,
)
from mlops_assets.monitoring.records import read_records
from mlops_assets.resources.retraining_policy import RetrainingPolicy
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.resources.tracking import MlflowResource

JOB_NAME = "retrain_model"
SENSOR_NAME = "retraining_sensor"
SCHEDULE_NAME = "retraining_floor_schedule"
TRAINING_SET_OP = "features__training_set"
REASON_TAG = "mlops/retraining_reason"
WINDOW_TAG = "mlops/training_window"
RETRAIN_SELECTION = [TRAINING_SET, TUNED, BASELINES, MODEL, EVALUATION, REGISTERED]
LABELLED = FCT_FLIGHTS
FEATURES = FLIGHT_FEATURES


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    window: tuple[str, str] | None = None
    run_key: str | None = None

    def run_request(self, tags: dict[str, str] | None = None) -> dg.RunRequest:
        assert self.window is not None and self.run_key is not None
        start, end = self.window
        return dg.RunRequest(
            run_key=self.run_key,
            run_config={
                "ops": {TRAINING_SET_OP: {"config": {"start_date": start, "end_date": end}}},
            },
            tags={REASON_TAG: self.reason[:200], WINDOW_TAG: f"{start}..{end}", **(tags or {})},
        )


def _window_end(champion) -> dt.date | None:
    if not champion or not champion.training_window:
        return None
    return dt.date.fromisoformat(champion.training_window.split("..")[-1])


def new_window(latest: dt.date, window_days: int) -> tuple[str, str]:
    start = max(FIRST_DAY, latest - dt.timedelta(days=window_days - 1))
    return start.isoformat(), latest.isoformat()


def drift_trigger(policy: RetrainingPolicy, records: list[dict], after: dt.date) -> str | None:
    recent = [r for r in records if dt.date.fromisoformat(r["day"]) > after][-policy.drift_days :]
    if len(recent) < policy.drift_days or any(r["drift_share"] < policy.drift_share for r in recent):
        return None
    shares = ", ".join(f"{r['day']}: {r['drift_share']:.2f}" for r in recent)
    return f"drift: {policy.drift_days} days with drift share >= {policy.drift_share} ({shares})"


def performance_trigger(
    policy: RetrainingPolicy, records: list[dict], after: dt.date, reference_auc: float | None
) -> str | None:
    if reference_auc is None:
        return None
    recent = [r for r in records if dt.date.fromisoformat(r["day"]) > after][-policy.performance_days :]
    aucs = [r["metrics"]["roc_auc"] for r in recent if math.isfinite(r["metrics"].get("roc_auc", math.nan))]
    if len(aucs) < policy.performance_days:
        return None
    mean = sum(aucs) / len(aucs)
    if mean > reference_auc - policy.auc_drop:
        return None
    return (
        f"performance: mean ROC-AUC {mean:.4f} over {len(aucs)} days < holdout {reference_auc:.4f} "
        f"- {policy.auc_drop}"
    )


def decide(
    policy: RetrainingPolicy,
    champion,
    latest: dt.date | None,
    drift: list[dict],
    performance: list[dict],
    last_requested_end: dt.date | None,
    floor: bool = False,
) -> Decision:
    """Whether to retrain now, why, and on which window. `latest`: the last day with outcomes and
    features; `last_requested_end`: the window end of the last retraining requested (the cursor)."""
    if champion is None:
        return Decision(False, "no champion: the first model is trained by hand (make demo)")
    if latest is None:
        return Decision(False, "no labelled day yet")
    trained_until = _window_end(champion) or latest
    since = max(trained_until, last_requested_end or trained_until)
    waited = (latest - since).days
    if waited < policy.cooldown_days:
        return Decision(False, f"cooldown: {waited} of {policy.cooldown_days} new days since {since}")
    if floor:
        behind = (latest - trained_until).days
        reason = f"schedule: the champion's window ends {behind} days before the latest data"
        trigger = reason if behind >= policy.floor_days else None
    else:
        trigger = drift_trigger(policy, drift, trained_until) or performance_trigger(
            policy, performance, trained_until, champion.holdout_roc_auc
        )
    if trigger is None:
        return Decision(False, "no trigger: drift and quality within thresholds")
    window = new_window(latest, policy.window_days)
    run_key = f"retrain:champion-v{champion.version}:{window[0]}..{window[1]}"
    return Decision(True, trigger, window, run_key)


def latest_ready_day(instance: dg.DagsterInstance) -> dt.date | None:
    """The last day whose outcomes (fct_flights) and features are both materialized."""
    labelled = instance.get_materialized_partitions(LABELLED)
    featured = instance.get_materialized_partitions(FEATURES)
    ready = labelled & featured
    return dt.date.fromisoformat(max(ready)) if ready else None


def evaluate(
    instance: dg.DagsterInstance,
    lake: ObjectStore,
    mlflow: MlflowResource,
    policy: RetrainingPolicy,
    cursor: str | None,
    floor: bool = False,
) -> tuple[Decision, dict[str, Any]]:
    """The decision from the instance, the lake's monitoring records and the registry (sensor, schedule
    and `mlops` share it)."""
    from mlops_assets.training.registry import champion_info

    state = json.loads(cursor) if cursor else {}
    last_end = state.get("last_window_end")
    decision = decide(
        policy,
        champion_info(mlflow.client(), mlflow.model_name),
        latest_ready_day(instance),
        read_records(lake, DRIFT_REPORT),
        read_records(lake, MODEL_PERFORMANCE),
        dt.date.fromisoformat(last_end) if last_end else None,
        floor=floor,
    )
    if decision.retrain:
        state = {"last_window_end": decision.window[1], "last_run_key": decision.run_key}
    return decision, state


EVENTS_PREFIX = "monitoring/retraining_events"


def record_request(lake: ObjectStore, decision: Decision, trigger: str) -> None:
    """Keeps the retraining events in the lake (what `mlops summary` lists)."""
    now = dt.datetime.now(dt.UTC)
    event = {
        "requested_at": now.isoformat(timespec="seconds"),
        "trigger": trigger,
        "reason": decision.reason,
        "window": list(decision.window or ()),
        "run_key": decision.run_key,
    }
    lake.write_bytes(f"{EVENTS_PREFIX}/{now:%Y%m%dT%H%M%S%f}.json", json.dumps(event, indent=1).encode())


def retraining_events(lake: ObjectStore) -> list[dict[str, Any]]:
    keys = sorted(o.key for o in lake.list_objects(f"{EVENTS_PREFIX}/") if o.key.endswith(".json"))
    return [json.loads(lake.read_bytes(k)) for k in keys]


ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def retraining_in_progress(instance: dg.DagsterInstance) -> bool:
    return bool(instance.get_run_ids(dg.RunsFilter(job_name=JOB_NAME, statuses=ACTIVE), limit=1))


def busy_reason(instance: dg.DagsterInstance) -> str | None:
    """Why a retraining must wait now, or None. Besides a retraining already running: any other run in
    progress, because the graph is still settling. Its days' features, predictions and reports are being
    written, so the window would end mid-way and the training set would read files that are changing
    (seen in a replay: the training set's point-in-time join failed while a month of features was being
    backfilled). The sensor looks again a minute later."""
    if retraining_in_progress(instance):
        return "a retraining run is in progress"
    running = instance.get_runs(dg.RunsFilter(statuses=ACTIVE), limit=1)
    if running:
        return f"the daily graph is running (run {running[0].run_id[:8]}): waiting for it to settle"
    return None
