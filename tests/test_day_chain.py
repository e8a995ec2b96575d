"""A lone complete landed day gets one run from ingestion to its drift report (ingestion/day_chain.py),
on the platform's own asset graph; anything less certain leaves the landing run to ingestion and the
rest to automation, as before. That automation then leaves the chained partitions alone is
tests/test_automation.py's."""

from __future__ import annotations

import dagster as dg
import pytest

from mlops_assets.ingestion.day_chain import chained_request
from tests.conftest import started_run

DAY = "2013-01-10"
RAW = [dg.AssetKey(["raw", "flights"]), dg.AssetKey(["raw", "weather"])]
# What a deployment with a champion has materialized before a day lands (none of it daily).
PREREQUISITES = [
    "raw/airlines", "raw/airports", "raw/planes", "stg_airlines", "stg_airports", "stg_planes",
    "features/feature_views", "features/training_set", "models/registered_model",
]  # fmt: skip
CHAIN = [
    "stg_weather", "stg_flights", "fct_flights", "features/flight_features", "features/online_store",
    "predictions/batch_predictions", "monitoring/drift_report", "monitoring/model_performance",
]  # fmt: skip


@pytest.fixture
def repository(tmp_path, monkeypatch):
    from mlops_assets.definitions import build_definitions

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    build_definitions.cache_clear()
    yield build_definitions().get_repository_def()
    build_definitions.cache_clear()


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def materialized(instance: dg.DagsterInstance, keys=PREREQUISITES) -> None:
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey.from_user_string(key)))


def landing(keys=RAW, day: str = DAY) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"{day}@v1", asset_selection=list(keys), partition_key=day, tags={"t": "1"})


def chain(repository, instance, requests):
    return chained_request(dg.build_sensor_context(instance=instance, repository_def=repository), requests)


def test_a_lone_complete_day_runs_on_to_its_reports_in_one_run(repository, instance):
    materialized(instance)
    [request], why = chain(repository, instance, [landing()])
    assert [key.to_user_string() for key in request.asset_selection] == ["raw/flights", "raw/weather", *CHAIN]
    assert (request.run_key, request.partition_key, request.tags) == (f"{DAY}@v1", DAY, {"t": "1"})
    assert why.startswith(f"one run for {DAY}") and "monitoring/drift_report" in why


@pytest.mark.parametrize(
    "case",
    ["no champion yet", "a table without its partner", "two days in one tick", "a reference file too",
     "another run in progress"],
)  # fmt: skip
def test_anything_less_certain_leaves_the_landing_run_to_ingestion(repository, instance, case):
    materialized(instance, [k for k in PREREQUISITES if not (case == "no champion yet" and "model" in k)])
    requests = [landing()]
    if case == "a table without its partner":
        requests = [landing(RAW[:1])]
    elif case == "two days in one tick":
        requests = [landing(), landing(day="2013-01-11")]
    elif case == "a reference file too":
        airlines = dg.RunRequest(run_key="airlines@v2", asset_selection=[dg.AssetKey(["raw", "airlines"])])
        requests = [airlines, *requests]
    elif case == "another run in progress":
        busy = started_run(instance, "retrain_model")
    unchanged, why = chain(repository, instance, requests)
    assert unchanged == requests
    assert why.startswith("ingestion only")
    if case == "no champion yet":
        assert "models/registered_model" in why
    if case == "another run in progress":
        assert busy.run_id in why


def test_a_day_whose_inputs_are_daily_and_missing_is_not_chained(repository, instance):
    """An input of the chain outside it that is partitioned must hold the day itself."""
    materialized(instance)
    graph = repository.asset_graph
    from mlops_assets.ingestion.day_chain import missing_inputs

    selection = [dg.AssetKey(["features", "flight_features"])]
    missing = missing_inputs(graph, instance, selection, DAY)
    assert missing == ["fct_flights", "stg_weather"]
    instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey("stg_weather"), partition=DAY))
    instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey("fct_flights"), partition=DAY))
    assert missing_inputs(graph, instance, selection, DAY) == []


def test_the_landing_sensor_requests_the_chain_and_dagster_accepts_it(repository, instance, tmp_path):
    """Through the sensor itself, as the daemon evaluates it (Dagster refuses a request for an asset
    outside the sensor's selection)."""
    import datetime as dt

    from mlops_assets.replay import replay
    from mlops_assets.resources.storage import LocalObjectStore

    materialized(instance)
    landing = LocalObjectStore(root=str(tmp_path / "landing"))
    day = dt.date.fromisoformat(DAY)
    replay(landing, day, day, include_reference=False)
    sensor = repository.get_sensor_def("landing_zone_sensor")
    context = dg.build_sensor_context(
        instance=instance, repository_def=repository, resources={"landing_zone": landing}
    )
    result = sensor.evaluate_tick(context)
    [request] = result.run_requests
    assert request.partition_key == DAY
    assert [key.to_user_string() for key in request.asset_selection] == ["raw/flights", "raw/weather", *CHAIN]
