"""The metrics: the prediction service's GET /metrics (a real app over the `champion_home` registry and
online store) and the platform exporter's cache (a real Dagster instance, lake and registry).

Prometheus itself scraping both, the dashboards' queries and the alerts: tests/test_prometheus.py.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.test_serving import make_app, request_body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, metric: str, /, **labels: str) -> float:
    return found[(metric, tuple(sorted(labels.items())))]


@pytest.fixture(scope="module")
def flights(champion_home):
    from tests.test_serving import scheduled_flights

    return scheduled_flights(champion_home)


def test_metrics_count_each_answer_by_endpoint_status_and_kind(champion_home, flights):
    from fastapi.testclient import TestClient

    good = [request_body(f) for f in flights.head(5).itertuples()]
    with TestClient(make_app(champion_home, max_body_bytes=4096)) as http:
        before = samples(http.get("/metrics").text)
        for body in good:
            assert http.post("/predict", json=body).status_code == 200
        assert http.post("/predict/batch", json={"flights": good[:3]}).status_code == 200
        unknown = {**good[0], "dest": "XXX"}
        assert http.post("/predict", json=unknown).status_code == 422
        assert http.post("/predict", json={**good[1], "flight_number": "twelve"}).status_code == 422
        assert http.post("/predict/batch", json={"flights": [unknown, good[1], unknown]}).status_code == 422
        huge = {"flights": [good[0]] * 100}
        assert http.post("/predict/batch", json=huge).status_code == 413
        assert http.post("/predict", content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
        assert http.get("/flights/AA1234").status_code == 404  # a path with a key in it
        text = http.get("/metrics").text
    found = samples(text)
    count = "mlops_serving_request_duration_seconds_count"
    assert value(found, count, endpoint="/predict", status="200") == 5
    assert value(found, count, endpoint="/predict/batch", status="200") == 1
    assert value(found, count, endpoint="/predict", status="422") == 2
    assert value(found, count, endpoint="/predict/batch", status="422") == 1
    assert value(found, count, endpoint="/predict/batch", status="413") == 1
    assert value(found, count, endpoint="/predict", status="415") == 1
    assert value(found, count, endpoint="other", status="404") == 1
    assert value(found, count, endpoint="/metrics", status="200") == 1  # the first scrape
    assert value(before, count, endpoint="/predict", status="200") == 0  # bound before any request
    # One count per request and kind: the batch with two unknown airports counts once.
    errors = "mlops_serving_errors_total"
    assert value(found, errors, status="422", kind="unknown_airport") == 2
    assert value(found, errors, status="422", kind="int_type") == 1
    assert value(found, errors, status="413", kind="body_too_large") == 1
    assert value(found, errors, status="415", kind="unsupported_media_type") == 1
    assert value(found, errors, status="404", kind="not_found") == 1
    # Stages and probabilities: one observation per scored request and per flight scored (5 + 3).
    assert value(found, "mlops_serving_stage_duration_seconds_count", stage="online_read") == 6
    assert value(found, "mlops_serving_stage_duration_seconds_count", stage="model") == 6
    assert value(found, "mlops_serving_predicted_probability_count") == 8
    assert 0 < value(found, "mlops_serving_predicted_probability_sum") < 8
    assert value(found, "mlops_serving_champion_version") == 1
    assert value(found, "mlops_serving_champion_swaps_total") == 1
    assert value(found, "mlops_serving_champion_loaded") == 1
    assert value(found, "mlops_serving_prediction_log_backlog_rows") >= 0
    assert value(found, "mlops_serving_prediction_log_flush_failures_total") == 0
    # Bounded labels: no flight, carrier or path from a request is a label value.
    assert "AA1234" not in text and good[0]["carrier"] + '"' not in text and "XXX" not in text
    labels = {dict(key[1]).get("endpoint") for key in found} - {None}
    assert labels <= {"/predict", "/predict/batch", "/health", "/metrics", "other"}


# After Feast's metrics module (which sets PROMETHEUS_MULTIPROC_DIR, as an online read imports it), two
# services' metrics in one process: each counts its own, in memory, however the variable was found.
_TWO_SERVICES = """
import os, feast.metrics
assert os.environ["PROMETHEUS_MULTIPROC_DIR"]
from prometheus_client import values
assert values.ValueClass is not values.MutexValue  # what prometheus_client chose from the variable
from mlops_assets.serving.metrics import ServiceMetrics
first, second = ServiceMetrics(), ServiceMetrics()
first.observe_request("/predict", 200, 0.001)
first.observe_request("/predict", 599, 0.001)  # a pair first seen after construction
child = second._latency["/predict"][200]
assert type(child._sum) is values.MutexValue, type(child._sum)
mine = first._latency["/predict"]
print(child._sum.get(), mine[200]._sum.get(), mine[599]._sum.get())
"""


def test_each_service_keeps_its_values_in_memory_after_feast_set_the_multiprocess_folder():
    """Guards `keep_values_in_process` (prometheus_client's `values.ValueClass`): a release that renamed
    it, or stopped reading it per metric, fails here."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("prometheus_multiproc")}
    done = subprocess.run([sys.executable, "-c", _TWO_SERVICES], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0.0", "0.001", "0.001"]


def test_without_metrics_there_is_no_metrics_endpoint(champion_home, flights):
    from fastapi.testclient import TestClient

    with TestClient(make_app(champion_home, metrics=False)) as http:
        assert http.post("/predict", json=request_body(flights.iloc[0])).status_code == 200
        assert http.get("/metrics").status_code == 404
        assert http.app.state.service.metrics is None


def test_a_503_is_counted_by_its_reason(champion_home, tmp_path, flights):
    from fastapi.testclient import TestClient

    from mlops_assets.serving.app import ServiceConfig, create_app
    from tests.test_serving import resources

    parts = resources(champion_home)
    empty = type(parts["mlflow"])(tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}")
    with TestClient(create_app(parts["feast"], empty, parts["lake"], ServiceConfig())) as http:
        assert http.post("/predict", json=request_body(flights.iloc[0])).status_code == 503
        found = samples(http.get("/metrics").text)
    assert value(found, "mlops_serving_errors_total", status="503", kind="no_champion") == 1
    assert value(found, "mlops_serving_champion_loaded") == 0
    assert ("mlops_serving_champion_version", ()) not in found


def test_the_exporter_reads_at_most_every_max_age_seconds(champion_home):
    """A scrape inside `max_age_s` is answered from memory; one after it reads the sources again, and sees
    what changed (a real materialization in the instance)."""
    import dagster as dg

    from mlops_assets.monitoring.exporter import PlatformCollector, Sources
    from mlops_assets.resources.storage import LocalObjectStore
    from tests.test_serving import resources

    now = [time.time()]
    mlflow = resources(champion_home)["mlflow"]
    with dg.instance_for_test() as instance:
        sources = Sources(
            instance=lambda: instance,
            lake=lambda: LocalObjectStore(root=str(champion_home / "lake")),
            registry=lambda: (mlflow.client(), mlflow.model_name),
        )
        collector = PlatformCollector(sources, max_age_s=30, clock=lambda: now[0])

        def read() -> dict:
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in collector.collect()
                for s in family.samples
            }

        first = read()
        assert collector.refreshes == 1
        assert value(first, "mlops_exporter_source_up", source="dagster") == 1
        assert value(first, "mlops_exporter_source_up", source="registry") == 1
        assert value(first, "mlops_model_champion_version") == 1
        assert value(first, "mlops_asset_materialization_age_seconds", asset="raw/flights") == float("inf")
        instance.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey(["raw", "flights"]), partition="2013-01-20")
        )
        now[0] += 29
        assert read() == first and collector.refreshes == 1  # from memory: the new event is not read
        now[0] += 2
        second = read()
        assert collector.refreshes == 2
        assert value(second, "mlops_asset_materialized_partitions", asset="raw/flights") == 1
        day = value(second, "mlops_asset_latest_partition_timestamp_seconds", asset="raw/flights")
        assert time.strftime("%Y-%m-%d", time.gmtime(day)) == "2013-01-20"
        assert 0 <= value(second, "mlops_asset_materialization_age_seconds", asset="raw/flights") < 120
        # Never-seen instigators and daemons are there, infinitely old: a dashboard shows them missing.
        age = "mlops_dagster_daemon_heartbeat_age_seconds"
        assert value(second, age, daemon="SENSOR") == float("inf")
        tick = "mlops_dagster_instigator_last_tick_age_seconds"
        assert value(second, tick, kind="sensor", name="retraining_sensor") == float("inf")


def test_the_exporter_follows_the_code_locations_assets_and_instigators():
    """The exporter names what it watches; this keeps the names in step with the Definitions (a renamed
    asset or sensor would otherwise vanish from the dashboards without an error)."""
    from mlops_assets.definitions import build_definitions
    from mlops_assets.monitoring import exporter

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    daily = {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None
    }
    # dbt's staging models are not watched on their own: fct_flights, built from them in the same dbt
    # step, carries the step's freshness.
    assert set(exporter.DAILY_ASSETS) == daily - {"stg_flights", "stg_weather", *exporter.ON_DEMAND_ASSETS}
    assert set(exporter.ON_DEMAND_ASSETS) <= daily  # a renamed on-demand asset is noticed too
    sensors = {sensor.name for sensor in defs.sensors or []}
    assert set(exporter.SENSORS) <= sensors
    assert set(exporter.SCHEDULES) == {schedule.name for schedule in defs.schedules or []}
