"""The closed loop, end to end, with the daemon's logic run against a test instance.

Days land in the landing zone; the landing-zone sensor and the automation conditions (evaluated as the
daemon evaluates them, ticks in a row, with the cursor carried over) drive dbt, Spark features, the
online store, batch predictions, drift and performance reports; one day's weather is deliberately
drifted; the retraining sensor requests a run on a moved window; the new version is registered as
challenger, promoted only through the gate; the prediction service answers with whatever the champion
then is. Real parts throughout: Spark, dbt on DuckDB, Feast, MLflow, Evidently, Ray Tune.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.lib.calendar import days_between
from mlops_assets.resources.storage import LocalObjectStore
from tests.conftest import TRAINING_WINDOW

pytestmark = pytest.mark.slow

NEW_DAYS = ("2013-01-22", "2013-01-23", "2013-01-24")
DRIFTED_DAY = "2013-01-24"
# Seeded in the instance as materialized already: what the fixture built before the test's instance existed.
HISTORY = ["features/feature_views", "features/training_set", "models/registered_model"]
# The days of TRAINING_WINDOW the fixture put in the warehouse: the new days' features read them (the
# lookback is a dependency), so the instance must know they are there.
WAREHOUSE_HISTORY = ["fct_flights", "stg_weather"]
REFERENCE = ["raw/airlines", "raw/airports", "raw/planes", "stg_airlines", "stg_airports", "stg_planes"]
SMALL_TRAINING = {
    "models__tuned_hyperparameters": {"config": {"num_samples": 2, "max_epochs": 2, "grace_period": 1}},
    "models__flight_delay_model": {"config": {"ensemble_size": 1, "max_epochs": 4}},
}


def drift_weather(landing: LocalObjectStore, day: str) -> None:
    """A day of weather unlike January's: warm, humid, windy, foggy, low pressure (inside the contract's
    ranges, so validation accepts it and the drift has to be caught downstream)."""
    from io import BytesIO

    key = f"weather/{day}.csv"
    frame = pd.read_csv(BytesIO(landing.read_bytes(key)))
    frame = frame.assign(
        temp=frame["temp"] + 45,
        dewp=frame["dewp"] + 45,
        humid=95.0,
        wind_speed=frame["wind_speed"] * 3 + 20,
        wind_gust=frame["wind_speed"] * 3 + 35,
        precip=0.4,
        pressure=frame["pressure"] - 40,
        visib=0.5,
    )
    landing.write_bytes(key, frame.to_csv(index=False).encode())


@pytest.fixture(scope="module")
def loop(training_set_home, tmp_path_factory):
    """A home with a champion (v1, trained on TRAINING_WINDOW), the local Definitions over it and an
    on-disk instance that knows what was built before."""
    from mlops_assets.definitions import build_definitions
    from tests.conftest import build_champion_in

    home = tmp_path_factory.mktemp("loop_home")
    build_champion_in(training_set_home, home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.setenv("DBT_TARGET_PATH", str(home / "dbt-target"))
        patch.delenv("MLOPS_PROFILE", raising=False)
        build_definitions.cache_clear()
        defs = with_test_resources(build_definitions("local"), home)
        (home / "dagster_home").mkdir()
        with dg.instance_for_test(temp_dir=str(home / "dagster_home")) as instance:
            for key in HISTORY:
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(dg.AssetKey.from_user_string(key))
                )
            first, last = (dt.date.fromisoformat(d) for d in TRAINING_WINDOW)
            for key in WAREHOUSE_HISTORY:
                for day in days_between(first, last):
                    instance.report_runless_asset_event(
                        dg.AssetMaterialization(dg.AssetKey(key), partition=day.isoformat())
                    )
            # The reference tables really run here: their blocking checks must have passed.
            run(defs, instance, [dg.AssetKey.from_user_string(k) for k in REFERENCE])
            yield home, defs, instance
        build_definitions.cache_clear()


def with_test_resources(defs: dg.Definitions, home: Path) -> dg.Definitions:
    """The local Definitions with the split of the test window (24 days cannot hold 14 + 14)."""
    from mlops_assets.resources.compute import ComputeResource
    from mlops_assets.resources.training_plan import TrainingPlan
    from tests.conftest import TRAINING_PLAN

    resources = {
        **defs.resources,
        "training": TrainingPlan(home=str(home), **TRAINING_PLAN),
        "compute": ComputeResource(device="cpu", num_cpus=2),
    }
    return dg.Definitions(
        assets=defs.assets,
        jobs=defs.jobs,
        sensors=defs.sensors,
        schedules=defs.schedules,
        resources=resources,
    )


def landing_sensor_tick(defs, instance, cursor):
    sensor = defs.get_sensor_def("landing_zone_sensor")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"landing_zone": defs.resources["landing_zone"]}
    )
    result = sensor(context)
    requests = result.run_requests if isinstance(result, dg.SensorResult) else []
    return requests, (result.cursor if isinstance(result, dg.SensorResult) else cursor)


def run(defs, instance, keys, partition_key=None, run_config=None, tags=None):
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=list(keys),
        partition_key=partition_key,
        run_config=run_config or {},
        tags=tags or {},
        raise_on_error=False,
    )
    failures = [e.message for e in result.all_events if e.is_step_failure]
    assert result.success, failures
    return result


def automation_ticks(defs, instance, cursor, max_ticks: int = 8) -> tuple[dict[str, set[str]], int]:
    """Ticks of the automation sensor, each request executed like the daemon would launch it, until a
    tick requests nothing. Returns, per asset, the partitions that ran, and how many ticks requested."""
    ran: dict[str, set[str]] = defaultdict(set)
    for tick in range(max_ticks):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        if result.total_requested == 0:
            return ran, tick
        by_partition: dict[str | None, set[dg.AssetKey]] = defaultdict(set)
        for key, partitions in result._requested_partitions_by_asset_key.items():
            for partition in partitions:
                by_partition[partition].add(key)
        for partition, keys in sorted(by_partition.items(), key=lambda item: str(item[0])):
            run(defs, instance, keys, partition_key=partition)
            for key in keys:
                ran[key.to_user_string()].add(str(partition))
    raise AssertionError(f"automation still requesting after {max_ticks} ticks: {dict(ran)}")


def test_new_days_flow_to_drift_reports_and_drift_retrains_the_model(loop):
    from mlops_assets.lib.keys import DRIFT_REPORT, MODEL_PERFORMANCE
    from mlops_assets.monitoring.drift import render_drift_html
    from mlops_assets.monitoring.records import read_records
    from mlops_assets.monitoring.retraining import JOB_NAME
    from mlops_assets.replay import replay
    from mlops_assets.resources.retraining_policy import RetrainingPolicy
    from mlops_assets.training.registry import CHALLENGER, CHAMPION, alias_version

    home, defs, instance = loop
    landing = LocalObjectStore(root=str(home / "landing"))
    lake = LocalObjectStore(root=str(home / "lake"))

    # A running deployment: the landing sensor knows what had landed before (its cursor), and the
    # automation sensor has evaluated the graph at least once (nothing to do: the history is built).
    _, cursor = landing_sensor_tick(defs, instance, None)
    first_tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first_tick.total_requested == 0
    first, last = (dt.date.fromisoformat(d) for d in (NEW_DAYS[0], NEW_DAYS[-1]))
    replay(landing, first, last, include_reference=False)
    drift_weather(landing, DRIFTED_DAY)

    requests, cursor = landing_sensor_tick(defs, instance, cursor)
    assert [(r.partition_key, [k.to_user_string() for k in r.asset_selection]) for r in requests] == [
        (day, ["raw/flights", "raw/weather"]) for day in NEW_DAYS
    ]  # one run per landed day
    for request in requests:
        run(defs, instance, request.asset_selection, request.partition_key, tags=request.tags)
    assert landing_sensor_tick(defs, instance, cursor)[0] == []  # each file once

    ran, ticks = automation_ticks(defs, instance, first_tick.cursor)
    # Checks are requested with their assets, so one tick takes each day from dbt to its drift report.
    assert ticks == 1, dict(ran)
    for key in (
        "fct_flights",
        "features/flight_features",
        "features/online_store",
        "predictions/batch_predictions",
        "monitoring/drift_report",
        "monitoring/model_performance",
    ):
        assert ran[key] == set(NEW_DAYS), (key, dict(ran))
    assert "models/registered_model" not in ran  # training is the retraining sensor's, not automation's

    predictions = lake.read_parquet(f"predictions/batch/{DRIFTED_DAY}.parquet")
    assert set(predictions["model_version"]) == {"1"}
    assert predictions["probability_late"].between(0, 1).all()
    drift = {r["day"]: r for r in read_records(lake, DRIFT_REPORT)}
    assert set(drift) == set(NEW_DAYS)
    injected = {f"weather_hourly__{c}" for c in ("temp", "precip", "pressure", "visib", "wind_speed")}
    assert injected <= set(drift[DRIFTED_DAY]["drifted"])
    calm = max(drift[d]["drift_share"] for d in NEW_DAYS if d != DRIFTED_DAY)
    assert drift[DRIFTED_DAY]["drift_share"] > calm
    page = home / "lake" / "monitoring" / "drift_report" / f"{DRIFTED_DAY}.html"
    assert f"mlops report html monitoring/drift_report {DRIFTED_DAY}" in page.read_text()  # the day's page
    assert render_drift_html(lake, DRIFTED_DAY) == (str(page), True)  # Evidently's report in its place
    assert page.stat().st_size > 1_000_000 and "window.drawDashboard(" in page.read_text()
    performance = {r["day"]: r for r in read_records(lake, MODEL_PERFORMANCE)}
    assert 0.0 < performance[NEW_DAYS[0]]["metrics"]["roc_auc"] < 1.0

    # The retraining sensor: the drifted day crosses the threshold, the calm days do not.
    threshold = (drift[DRIFTED_DAY]["drift_share"] + calm) / 2
    policy = RetrainingPolicy(drift_share=threshold, drift_days=1, cooldown_days=2, window_days=30)
    sensor = defs.get_sensor_def("retraining_sensor")
    resources = {"lake": lake, "mlflow": defs.resources["mlflow"], "retraining": policy}
    result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(result, dg.SensorResult), result
    (request,) = result.run_requests
    window = request.run_config["ops"]["features__training_set"]["config"]
    assert (window["start_date"], window["end_date"]) == (TRAINING_WINDOW[0], NEW_DAYS[-1])
    assert request.run_key == f"retrain:champion-v1:{TRAINING_WINDOW[0]}..{NEW_DAYS[-1]}"
    state = json.loads(result.cursor)
    again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=resources))
    assert isinstance(again, dg.SkipReason) and "cooldown" in again.skip_message  # no loop
    assert state["last_window_end"] == NEW_DAYS[-1]

    job = defs.get_job_def(JOB_NAME)
    config = {"ops": {**request.run_config["ops"], **SMALL_TRAINING}}
    outcome = job.execute_in_process(instance=instance, run_config=config, tags=request.tags)
    assert outcome.success
    registered = json.loads(lake.read_bytes("models/registered_model.json"))
    client = defs.resources["mlflow"].client()
    assert registered["version"] == "2" and alias_version(client, "flight_delay", CHALLENGER) == "2"
    metrics = registered["metrics"]
    better = (
        metrics["candidate"]["roc_auc"] >= metrics["champion"]["roc_auc"] + 0.002
        and metrics["candidate"]["ece"] <= metrics["champion"]["ece"] + 0.01
    )
    assert registered["promoted"] == better
    assert alias_version(client, "flight_delay", CHAMPION) == ("2" if better else "1")
    answer_with_champion(home, defs, expected="2" if better else "1")


def answer_with_champion(home: Path, defs, expected: str) -> None:
    """The prediction service, started on this home, scores with the champion's version."""
    from fastapi.testclient import TestClient

    from mlops_assets.serving.app import create_app

    schedule = pd.read_parquet(home / "lake" / "features" / "flight_schedule" / f"{NEW_DAYS[-1]}.parquet")
    flight = schedule.iloc[0]
    departure = pd.Timestamp(flight["event_timestamp"]) + pd.Timedelta(hours=24)
    number = int(flight["flight_id"].split("-")[1])
    body = {
        "carrier": flight["carrier"],
        "flight_number": number,
        "origin": flight["origin"],
        "dest": flight["dest"],
        "scheduled_departure": departure.isoformat(),
    }
    app = create_app(defs.resources["feast"], defs.resources["mlflow"], defs.resources["lake"])
    with TestClient(app) as client:
        response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    assert str(response.json()["model_version"]) == expected
