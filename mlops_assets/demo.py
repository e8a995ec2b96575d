"""`mlops demo` and `mlops retrain`: the quick start's runs, each through the `dagster` CLI as a user would
type it (the command is printed first), and the retraining rules applied now.

The demo's runs, in graph order: the reference tables; the window's daily assets as one single-run
backfill (raw, dbt, Spark features); `feast apply`, the first training set and the training graph in one
run, with the online store materialized beside it from the moment `feast apply` has finished
(independent work: the online store's writes are one Python thread, the training uses every core); a
month of batch predictions and monitoring; and the retraining sensor's decision, acted on as the daemon
would.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mlops_assets.lib.job_runs import CODE_LOCATION
from mlops_assets.lib.run_output import Background, follow

DEFAULT_START = "2013-01-01"
DEFAULT_END = "2013-03-31"
REFERENCE_SELECTION = "raw/airlines,raw/airports,raw/planes,stg_airlines,stg_airports,stg_planes"
DAILY_SELECTION = "raw/flights,raw/weather,stg_flights,stg_weather,fct_flights,features/flight_features"
# `feast apply`, the training set and the training graph in one run: each run pays for starting
# (the code location, the instance, Feast's and MLflow's imports) once.
TRAINING_SELECTION = (
    "features/feature_views,features/training_set,"
    "models/tuned_hyperparameters,models/baselines,models/flight_delay_model,"
    "models/model_evaluation,models/registered_model"
)
ONLINE_STORE = "features/online_store"
# The online store's run starts once this step of the training run has registered the feature views.
FEATURE_VIEWS_OP = "features__feature_views"
TRAINING_SET_OP = "features__training_set"
MONITORING_SELECTION = "predictions/batch_predictions,monitoring/drift_report,monitoring/model_performance"
# The first champion learns from the window's first two months; the last is served and monitored.
MONITORED_DAYS = 31
# One process for the run: the steps share their imports (GX, dbt) instead of each paying for them.
# The local profile's Definitions run in-process already; production's executor is chosen per run.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def materialize_command(selection: str, *options: str) -> list[str]:
    """`dagster asset materialize` of this code location, as a user would type it, plus options."""
    return [sys.executable, "-m", "dagster", "asset", "materialize", *CODE_LOCATION, "--select", selection,
            *options]  # fmt: skip


def executor_config() -> dict:
    from mlops_assets.lib.settings import load_settings

    return {} if load_settings().profile == "local" else IN_PROCESS


def _command(selection: str, partition_range: str | None, ops: dict | None) -> list[str]:
    options = ["--partition-range", partition_range] if partition_range else []
    run_config = {**executor_config(), **({"ops": ops} if ops else {})}
    print(
        f"$ dagster asset materialize --select {selection}"
        + (f" --partition-range {partition_range}" if partition_range else "")
    )
    return materialize_command(selection, *options, "--config-json", json.dumps(run_config))


def _require_success(selection: str, code: int, output: str) -> None:
    if code != 0:
        sys.stderr.write(output[-12000:])
        raise SystemExit(f"materialization of {selection} failed (exit {code})")


def materialize(
    selection: str,
    partition_range: str | None = None,
    ops: dict | None = None,
    on_step_done: Callable[[str], None] | None = None,
) -> None:
    code, output = follow(_command(selection, partition_range, ops), on_step_done=on_step_done)
    _require_success(selection, code, output)


def materialize_beside(selection: str, partition_range: str | None = None) -> Background:
    """Starts the run and returns at once; its `wait()` gives (exit code, output)."""
    return Background(_command(selection, partition_range, None), label=selection)


def training_set_ops(start: dt.date | str, end: dt.date | str) -> dict:
    return {TRAINING_SET_OP: {"config": {"start_date": str(start), "end_date": str(end)}}}


def run_demo(start: dt.date, end: dt.date) -> None:
    """The whole loop on [start, end]: features, a first champion, the last month served and monitored,
    then the retraining decision."""
    window = f"{start}...{end}"
    monitored_from = max(start + dt.timedelta(days=42), end - dt.timedelta(days=MONITORED_DAYS - 1))
    materialize(REFERENCE_SELECTION)
    materialize(DAILY_SELECTION, window)
    # Every landed file is ingested now: the sensor's cursor is set beside the rest of the demo.
    sensor_cursor = concurrent.futures.ThreadPoolExecutor(1).submit(mark_landed_files_ingested)
    first_window = (start, monitored_from - dt.timedelta(days=1))
    online: list[Background] = []

    def start_online_store(step: str) -> None:
        if step == FEATURE_VIEWS_OP and not online:
            online.append(materialize_beside(ONLINE_STORE, window))

    try:
        materialize(TRAINING_SELECTION, ops=training_set_ops(*first_window), on_step_done=start_online_store)
    finally:  # a failed training run still waits for the online store's run: the demo leaves none behind
        outcomes = [run.wait() for run in online]
    if not outcomes:  # the training run succeeded, so `feast apply` did: never reached for lack of a line
        materialize(ONLINE_STORE, window)
    for outcome in outcomes:
        _require_success(ONLINE_STORE, *outcome)
    materialize(MONITORING_SELECTION, f"{monitored_from}...{end}")
    retrain_if_needed()
    sensor_cursor.result()


def profile_store(name: str):
    """The profile's `landing_zone` or `lake` object store."""
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.storage import object_stores, resolve_store

    return resolve_store(object_stores(load_settings())[name])


def mark_landed_files_ingested() -> None:
    """The demo ingested the window through the CLI: tell the landing-zone sensor (its cursor, through
    `dagster sensor cursor`), so that `make ui` does not ingest the same files a second time."""
    from mlops_assets.ingestion.landing import SENSOR_NAME, cursor_of

    # The workspace file names the code location as `make ui` loads it: the cursor must be set on that
    # location's sensor (a `-m` location is another location, with a sensor state of its own).
    workspace = Path(__file__).resolve().parents[1] / "workspace.yaml"
    location = ["-w", str(workspace)] if workspace.exists() else CODE_LOCATION
    sensor = [sys.executable, "-m", "dagster", "sensor"]
    # `cursor --set` on a sensor without stored state stores it STOPPED, whatever its default status:
    # started again at once, or `make ui` would never ingest another file.
    for action, *options in (("cursor", "--set", cursor_of(profile_store("landing_zone"))), ("start",)):
        completed = subprocess.run(
            [*sensor, action, SENSOR_NAME, *location, *options], capture_output=True, text=True
        )
        if completed.returncode != 0:
            sys.stderr.write(completed.stderr[-2000:])
            raise SystemExit(f"dagster sensor {action} {SENSOR_NAME} failed (exit {completed.returncode})")


def retrain_if_needed() -> None:
    """Evaluates the retraining sensor's rule on what the graph produced; when it fires, runs the same
    job the sensor would request (training set over the moved window, then the training graph)."""
    import dagster as dg

    from mlops_assets.lib.job_runs import execute_request
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.monitoring.retraining import JOB_NAME, evaluate, record_request
    from mlops_assets.resources.retraining_policy import RetrainingPolicy
    from mlops_assets.resources.tracking import mlflow_resource

    trigger = "sensor"
    lake = profile_store("lake")
    with (
        dg.DagsterInstance.get() as instance,
        dg.build_resources({"mlflow": mlflow_resource(load_settings())}) as built,
    ):
        decision, _ = evaluate(instance, lake, built.mlflow, RetrainingPolicy(), None)
        print(f"retraining sensor: {'RETRAIN' if decision.retrain else 'no retraining'}: {decision.reason}")
        if not decision.retrain:  # what the weekly floor schedule decides at its next tick
            trigger = "schedule"
            decision, _ = evaluate(instance, lake, built.mlflow, RetrainingPolicy(), None, floor=True)
            print(f"floor schedule: {'RETRAIN' if decision.retrain else 'no retraining'}: {decision.reason}")
    if decision.retrain and decision.window:
        record_request(lake, decision, f"{trigger}, via mlops")
        # The sensor's own job and RunRequest: the UI lists a `retrain_model` run, as for the daemon's.
        execute_request(JOB_NAME, decision.run_request({"mlops/trigger": trigger}), executor_config())
