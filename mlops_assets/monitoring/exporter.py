"""The platform's metrics for Prometheus to pull: `mlops metrics` serves them at GET /metrics.

Read from the three places that know them, never from the code location (loading it costs seconds):
- the Dagster instance (DAGSTER_HOME): runs by job and status, the run queue, each sensor's and schedule's
  last tick and failures, the daemon's heartbeats, each daily asset's latest materialized partition and
  the age of its latest materialization, asset checks whose latest evaluation failed;
- the lake's monitoring records (monitoring/records.py, monitoring/retraining.py): the latest day's drift
  share and ROC-AUC, the retraining requests;
- the MLflow registry: the champion's version and holdout ROC-AUC, the alias moves (registry history).

A scrape is cheap: `PlatformCollector` recomputes everything at most every `max_age_s` seconds (an
instance's event log is a database; a year of runs is thousands of rows) and answers other scrapes from
the last result. A source that fails shows as `mlops_exporter_source_up{source} 0` and the others are
still exported. Labels are bounded: jobs, sensors, daemons and assets of the graph, run statuses.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("mlops.exporter")

# The graph's daily assets (DESIGN.md), upstream first; the exporter names them without loading the graph.
DAILY_ASSETS = (
    "raw/flights",
    "raw/weather",
    "fct_flights",
    "features/flight_features",
    "features/online_store",
    "predictions/batch_predictions",
    "monitoring/drift_report",
    "monitoring/model_performance",
)
# Daily assets materialized on request, not every day (no automation condition): their age would fire
# DailyAssetStale (deploy/prometheus/alerts.yml) for no missed day, so they are not watched.
ON_DEMAND_ASSETS = ("monitoring/shadow_comparison",)
# The instigators the graph defines: exported before their first tick too, so a sensor that never ran
# shows (with an infinite age) instead of being missing from the dashboard.
SENSORS = ("landing_zone_sensor", "retraining_sensor")
SCHEDULES = ("retraining_floor_schedule",)
# The daemons `dagster dev` runs for this instance (dagster.yaml: queued runs, run monitoring).
DAEMONS = ("SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR", "ASSET", "MONITORING")
TICKS_LOOKED_AT = 100  # a sensor's failures are counted among its latest ticks
RUNS_LOOKED_AT = 1000  # jobs are discovered among the latest runs
CHECK_EVALUATIONS_LOOKED_AT = 5000  # latest asset check evaluations read per refresh
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass
class Sources:
    """Where the figures come from; each is opened on first use and kept."""

    instance: Callable[[], Any]  # -> dagster.DagsterInstance
    lake: Callable[[], Any]  # -> ObjectStore
    registry: Callable[[], tuple[Any, str]]  # -> (MlflowClient, registered model name)
    drift_share_threshold: float = 0.25  # RetrainingPolicy's defaults: what the alerts compare with
    auc_drop: float = 0.05


class PlatformCollector(Collector):
    """The figures of `Sources`, recomputed at most every `max_age_s` seconds (a scrape in between is
    answered from memory)."""

    def __init__(self, sources: Sources, max_age_s: float = 30.0, clock: Callable[[], float] = time.time):
        self.sources, self.max_age_s, self._clock = sources, max_age_s, clock
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._computed_at = -math.inf
        self._opened: dict[str, Any] = {}
        self.refreshes = 0

    def describe(self) -> list:
        return []  # registration must not compute (it may be long before the first scrape)

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # two scrapes at once compute once
            if self._clock() - self._computed_at >= self.max_age_s:
                self.refresh()
            families = self._families
        yield from families

    def refresh(self) -> None:
        """Reads every figure now. The first reading also imports dagster and mlflow and opens the
        instance and the registry (about 20 s on 2 busy cores): `serve` does it before it listens, so a
        scrape never waits for it; later readings are SQL queries and listings (well under a second)."""
        self._families = self.compute()
        self._computed_at = self._clock()
        self.refreshes += 1

    def _source(self, name: str) -> Any:
        if name not in self._opened:
            self._opened[name] = getattr(self.sources, name)()
        return self._opened[name]

    def compute(self) -> list[Metric]:
        started, now = time.perf_counter(), self._clock()
        families: list[Metric] = []
        up = GaugeMetricFamily(
            "mlops_exporter_source_up", "1 when the last refresh read the source.", labels=["source"]
        )
        for name, section in (
            ("dagster", lambda: dagster_families(self._source("instance"), now)),
            ("lake", lambda: lake_families(self._source("lake"), self.sources)),
            ("registry", lambda: registry_families(*self._source("registry"))),
        ):
            try:
                families.extend(section())
                up.add_metric([name], 1.0)
            except Exception:  # one source down must not hide the others
                log.exception(f"exporter: could not read {name}")
                self._opened.pop({"dagster": "instance"}.get(name, name), None)  # reopen next time
                up.add_metric([name], 0.0)
        families.append(up)
        families.append(
            GaugeMetricFamily(
                "mlops_exporter_refresh_duration_seconds",
                "How long the last refresh of every figure took.",
                value=time.perf_counter() - started,
            )
        )
        families.append(
            GaugeMetricFamily(
                "mlops_exporter_refresh_timestamp_seconds",
                "When the figures were last read (Unix time).",
                value=now,
            )
        )
        return families


# ---- the Dagster instance ------------------------------------------------------------------------------


def dagster_families(instance, now: float) -> list[Metric]:
    return [
        *run_families(instance),
        *instigator_families(instance, now),
        daemon_family(instance, now),
        *asset_families(instance, now),
        check_family(instance),
    ]


def run_families(instance) -> list[Metric]:
    import dagster as dg

    runs = GaugeMetricFamily(
        "mlops_dagster_runs",
        "Runs in the instance by job and status (FAILURE only grows: alert on its increase).",
        labels=["job", "status"],
    )
    jobs = sorted({r.dagster_run.job_name for r in instance.get_run_records(limit=RUNS_LOOKED_AT)})
    for job in jobs:
        for status in dg.DagsterRunStatus:
            count = instance.get_runs_count(dg.RunsFilter(job_name=job, statuses=[status]))
            if count or status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
                runs.add_metric([job, status.value], count)
    queued = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    active = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    return [
        runs,
        GaugeMetricFamily("mlops_dagster_run_queue_depth", "Runs waiting in the run queue.", value=queued),
        GaugeMetricFamily(
            "mlops_dagster_runs_in_progress",
            "Runs starting or running.",
            value=instance.get_runs_count(dg.RunsFilter(statuses=active)),
        ),
    ]


def instigator_families(instance, now: float) -> list[Metric]:
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import TickStatus

    age = GaugeMetricFamily(
        "mlops_dagster_instigator_last_tick_age_seconds",
        "Seconds since a sensor's or schedule's latest tick (+Inf: it never ticked in this instance).",
        labels=["kind", "name"],
    )
    failures = GaugeMetricFamily(
        "mlops_dagster_instigator_tick_failures",
        f"Failed ticks among a sensor's or schedule's latest {TICKS_LOOKED_AT}.",
        labels=["kind", "name"],
    )
    failed = GaugeMetricFamily(
        "mlops_dagster_instigator_last_tick_failed",
        "1 when a sensor's or schedule's latest tick failed.",
        labels=["kind", "name"],
    )
    seen: set[tuple[str, str]] = set()
    for kind, instigator_type in (("sensor", InstigatorType.SENSOR), ("schedule", InstigatorType.SCHEDULE)):
        for state in instance.all_instigator_state(instigator_type=instigator_type):
            name = state.instigator_name
            if (kind, name) in seen or not _LABEL.fullmatch(name):
                continue
            seen.add((kind, name))
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=TICKS_LOOKED_AT)
            if ticks:
                age.add_metric([kind, name], max(0.0, now - ticks[0].timestamp))
                failed.add_metric([kind, name], float(ticks[0].status == TickStatus.FAILURE))
            else:
                age.add_metric([kind, name], math.inf)
                failed.add_metric([kind, name], 0.0)
            failures.add_metric([kind, name], sum(t.status == TickStatus.FAILURE for t in ticks))
    for kind, names in (("sensor", SENSORS), ("schedule", SCHEDULES)):
        for name in names:
            if (kind, name) not in seen:
                age.add_metric([kind, name], math.inf)
                failed.add_metric([kind, name], 0.0)
                failures.add_metric([kind, name], 0.0)
    return [age, failures, failed]


def daemon_family(instance, now: float) -> Metric:
    family = GaugeMetricFamily(
        "mlops_dagster_daemon_heartbeat_age_seconds",
        "Seconds since each Dagster daemon's latest heartbeat (+Inf: none recorded in this instance).",
        labels=["daemon"],
    )
    beats = instance.get_daemon_heartbeats()
    for daemon in sorted({*DAEMONS, *(d for d in beats if _LABEL.fullmatch(d))}):
        beat = beats.get(daemon)
        family.add_metric([daemon], max(0.0, now - beat.timestamp) if beat else math.inf)
    return family


def asset_families(instance, now: float) -> list[Metric]:
    import dagster as dg

    latest = GaugeMetricFamily(
        "mlops_asset_latest_partition_timestamp_seconds",
        "A daily asset's latest materialized partition, as the Unix time of that day's start (UTC).",
        labels=["asset"],
    )
    age = GaugeMetricFamily(
        "mlops_asset_materialization_age_seconds",
        "Seconds since a daily asset's latest materialization (+Inf: never materialized).",
        labels=["asset"],
    )
    partitions = GaugeMetricFamily(
        "mlops_asset_materialized_partitions", "Partitions of a daily asset materialized.", labels=["asset"]
    )
    for name in DAILY_ASSETS:
        key = dg.AssetKey(name.split("/"))
        done = instance.get_materialized_partitions(key)
        partitions.add_metric([name], len(done))
        if done:
            day = dt.date.fromisoformat(max(done))
            latest.add_metric([name], dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())
        event = instance.get_latest_materialization_event(key)
        age.add_metric([name], max(0.0, now - event.timestamp) if event else math.inf)
    return [latest, age, partitions]


def check_family(instance) -> Metric:
    """Checks whose latest evaluation failed, by asset (the latest evaluations of the event log)."""
    import dagster as dg

    records = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION),
        limit=CHECK_EVALUATIONS_LOOKED_AT,
        ascending=False,
    )
    latest: dict[tuple[str, str], bool] = {}
    for record in records:  # newest first: the first evaluation seen of a check is its latest
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        check = (evaluation.asset_key.to_user_string(), evaluation.check_name)
        latest.setdefault(check, bool(evaluation.passed))
    family = GaugeMetricFamily(
        "mlops_asset_checks_failed",
        "Asset checks whose latest evaluation failed, by asset (0 for an asset whose checks all passed).",
        labels=["asset"],
    )
    by_asset: dict[str, int] = dict.fromkeys(DAILY_ASSETS, 0)  # a series before any check ran too
    for (asset, _), passed in latest.items():
        by_asset[asset] = by_asset.get(asset, 0) + (not passed)
    for asset, count in sorted(by_asset.items()):
        family.add_metric([asset], count)
    return family


# ---- the lake's records --------------------------------------------------------------------------------


def lake_families(lake, sources: Sources) -> list[Metric]:
    from mlops_assets.monitoring.retraining import retraining_events

    drift = latest_record(lake, "drift_report")
    performance = latest_record(lake, "model_performance")
    families: list[Metric] = []
    if drift is not None:
        families.append(
            GaugeMetricFamily(
                "mlops_monitoring_drift_share",
                "Share of features drifted on the latest day with a drift report.",
                value=float(drift["drift_share"]),
            )
        )
        families.append(_day_family("mlops_monitoring_drift_day_timestamp_seconds", "drift report", drift))
    if performance is not None:
        auc = performance.get("metrics", {}).get("roc_auc")
        if auc is not None and math.isfinite(auc):
            families.append(
                GaugeMetricFamily(
                    "mlops_monitoring_roc_auc",
                    "The champion's ROC-AUC on the latest day with outcomes (model_performance).",
                    value=float(auc),
                )
            )
        families.append(
            _day_family(
                "mlops_monitoring_performance_day_timestamp_seconds", "performance record", performance
            )
        )
    families.append(
        GaugeMetricFamily(
            "mlops_retraining_drift_share_threshold",
            "The drift share from which a day counts as drifted (RetrainingPolicy.drift_share).",
            value=sources.drift_share_threshold,
        )
    )
    families.append(
        GaugeMetricFamily(
            "mlops_retraining_auc_drop",
            "How far under the champion's holdout ROC-AUC the daily ROC-AUC may fall (RetrainingPolicy).",
            value=sources.auc_drop,
        )
    )
    events = retraining_events(lake)
    requests = CounterMetricFamily(
        "mlops_retraining_requests", "Retrainings requested, by what requested them.", labels=["trigger"]
    )
    for trigger, count in sorted(_count(_trigger(e.get("trigger")) for e in events).items()):
        requests.add_metric([trigger], count)
    families.append(requests)
    if events:
        at = dt.datetime.fromisoformat(events[-1]["requested_at"])
        families.append(
            GaugeMetricFamily(
                "mlops_retraining_last_request_timestamp_seconds",
                "When the latest retraining was requested (Unix time).",
                value=at.timestamp(),
            )
        )
    return families


def latest_record(lake, asset: str) -> dict[str, Any] | None:
    """The latest day's record of a monitoring asset (monitoring/<asset>/<day>.json): one read, not all."""
    keys = sorted(o.key for o in lake.list_objects(f"monitoring/{asset}/") if o.key.endswith(".json"))
    return json.loads(lake.read_bytes(keys[-1])) if keys else None


def _day_family(name: str, what: str, record: dict[str, Any]) -> Metric:
    day = dt.date.fromisoformat(record["day"])
    return GaugeMetricFamily(
        name,
        f"The data day of the latest {what}, as the Unix time of its start (UTC).",
        value=dt.datetime.combine(day, dt.time(), dt.UTC).timestamp(),
    )


def _trigger(text: Any) -> str:
    """'sensor', 'schedule', 'sensor, via mlops' -> the first word (a bounded label)."""
    word = str(text or "").split(",")[0].strip().split(" ")[0]
    return word if _LABEL.fullmatch(word) else "other"


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


# ---- the registry --------------------------------------------------------------------------------------


def registry_families(client, name: str) -> list[Metric]:
    from mlops_assets.training import registry

    families: list[Metric] = []
    champion = registry.champion_info(client, name)
    present = GaugeMetricFamily("mlops_model_champion_present", "1 when the champion alias names a version.")
    present.add_metric([], 1.0 if champion else 0.0)
    families.append(present)
    if champion is not None:
        families.append(
            GaugeMetricFamily(
                "mlops_model_champion_version",
                "The version the champion alias names.",
                value=float(champion.version),
            )
        )
        if champion.holdout_roc_auc is not None:
            families.append(
                GaugeMetricFamily(
                    "mlops_model_champion_holdout_roc_auc",
                    "The champion's ROC-AUC on its evaluation holdout (the bar daily quality is held to).",
                    value=champion.holdout_roc_auc,
                )
            )
    moves = CounterMetricFamily(
        "mlops_model_alias_moves",
        "Moves of the registry's aliases, by alias and action.",
        labels=["alias", "action"],
    )
    history = registry.history(client, name)
    for (alias, action), count in sorted(
        _count_pairs((str(e.get("alias")), str(e.get("action"))) for e in history).items()
    ):
        if _LABEL.fullmatch(alias) and _LABEL.fullmatch(action):
            moves.add_metric([alias, action], count)
    families.append(moves)
    return families


def _count_pairs(values: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


# ---- the command ---------------------------------------------------------------------------------------


def profile_sources() -> Sources:
    """The sources of the profile `mlops` runs in (DAGSTER_HOME, MLOPS_HOME, MLOPS_PROFILE), read when
    the exporter starts."""

    def instance():
        import dagster as dg

        from mlops_assets.cli import ensure_dagster_home

        ensure_dagster_home()
        return dg.DagsterInstance.get()

    def lake():
        from mlops_assets.demo import profile_store

        return profile_store("lake")

    def registry():
        from mlops_assets.cli import _registry

        return _registry()

    from mlops_assets.resources.retraining_policy import RetrainingPolicy

    policy = RetrainingPolicy()
    return Sources(instance, lake, registry, policy.drift_share, policy.auc_drop)


def serve(sources: Sources, host: str, port: int, max_age_s: float) -> tuple[Any, Any, PlatformCollector]:
    """Starts the exporter's HTTP server in a thread; returns (server, thread, collector)."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    collector = PlatformCollector(sources, max_age_s)
    collector.refresh()
    registry.register(collector)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread, collector
