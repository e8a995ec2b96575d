"""The code location: complete, described, cheap to load, profile chosen at build time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.definitions import build_definitions
from mlops_assets.lib.settings import load_settings
from mlops_assets.resources.storage import LocalObjectStore
from mlops_assets.resources.storage_s3 import S3ObjectStore

RAW = ["raw/airlines", "raw/airports", "raw/planes", "raw/flights", "raw/weather"]
MODELS = [
    "models/tuned_hyperparameters",
    "models/baselines",
    "models/flight_delay_model",
    "models/model_evaluation",
    "models/registered_model",
]


def test_loading_the_code_location_imports_no_heavy_library():
    probe = Path(__file__).parent / "probes" / "load_definitions.py"
    completed = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, check=True)
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert set(RAW) <= set(report["assets"])
    assert set(MODELS) <= set(report["assets"])


def test_every_raw_asset_is_described_owned_grouped_and_gated():
    defs = build_definitions.__wrapped__("local")
    graph = defs.resolve_asset_graph()
    for key in RAW:
        node = graph.get(dg.AssetKey.from_user_string(key))
        assert node.description and node.owners == ["team:data-platform"]
        assert node.group_name == "ingestion"
        assert {"pandas", "great_expectations", "parquet"} <= set(node.kinds)
        specs = {k.name: graph.get_check_spec(k) for k in graph.get_check_keys_for_assets({node.key})}
        assert set(specs) == {"great_expectations_suite", "quarantine_rate"}
        assert all(spec.blocking for spec in specs.values())
    daily = graph.get(dg.AssetKey(["raw", "flights"]))
    assert daily.partitions_def.get_first_partition_key() == "2013-01-01"
    assert daily.partitions_def.get_last_partition_key() == "2013-12-31"
    assert dg.AssetKey(["raw", "airlines"]) in daily.parent_keys
    assert defs.resolve_sensor_def("landing_zone_sensor").default_status == dg.DefaultSensorStatus.RUNNING


def test_profile_selects_the_implementations(monkeypatch):
    local = build_definitions.__wrapped__("local").resources
    assert isinstance(local["landing_zone"], LocalObjectStore) and isinstance(local["lake"], LocalObjectStore)
    monkeypatch.setenv("MLOPS_S3_BUCKET", "platform")
    production = build_definitions.__wrapped__("production").resources
    assert isinstance(production["landing_zone"], S3ObjectStore)
    assert production["landing_zone"].prefix == "landing" and production["lake"].prefix == "lake"


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(
        ValueError, match="MLOPS_PROFILE='staging' is not a profile; choose one of local, production"
    ):
        load_settings({"MLOPS_PROFILE": "staging"})


def test_every_writer_of_the_online_store_is_in_its_pool():
    """`feast apply` and the materialization both write the online store's tables; on SQLite two writers at
    once fail with "database is locked", so they share the one-slot pool."""
    graph = build_definitions.__wrapped__("local").resolve_asset_graph()
    for key in ("features/feature_views", "features/online_store"):
        assert graph.get(dg.AssetKey.from_user_string(key)).pools == {"online_store"}, key


def test_training_stage_is_one_lineage_with_gpu_steps_in_the_gpu_pool(monkeypatch):
    from mlops_assets.resources.compute import ComputeResource
    from mlops_assets.resources.tracking import MlflowResource

    defs = build_definitions.__wrapped__("local")
    graph = defs.resolve_asset_graph()
    nodes = {key: graph.get(dg.AssetKey.from_user_string(key)) for key in MODELS}
    for key, node in nodes.items():
        assert node.description and node.owners == ["team:ml-platform"] and node.group_name == "training", key
    assert nodes["models/tuned_hyperparameters"].pools == {"gpu"}
    assert nodes["models/flight_delay_model"].pools == {"gpu"}
    assert not nodes["models/model_evaluation"].pools
    assert {"ray", "pytorch", "mlflow"} <= set(nodes["models/tuned_hyperparameters"].kinds)
    training_set = dg.AssetKey(["features", "training_set"])
    assert training_set in nodes["models/flight_delay_model"].parent_keys
    assert nodes["models/registered_model"].parent_keys == {dg.AssetKey(["models", "model_evaluation"])}
    evaluation_checks = graph.get_check_keys_for_assets({nodes["models/model_evaluation"].key})
    assert [graph.get_check_spec(k).blocking for k in evaluation_checks] == [True]

    local = defs.resources
    assert isinstance(local["mlflow"], MlflowResource) and local["mlflow"].tracking_uri.startswith(
        "sqlite:///"
    )
    assert isinstance(local["compute"], ComputeResource) and local["compute"].ray_address is None
    monkeypatch.setenv("MLOPS_S3_BUCKET", "platform")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("MLOPS_RAY_ADDRESS", "ray://ray-head:10001")
    production = build_definitions.__wrapped__("production").resources
    with dg.build_resources({"mlflow": production["mlflow"], "compute": production["compute"]}) as built:
        assert built.mlflow.tracking_uri == "http://mlflow.internal:5000"
        assert built.compute.ray_init_kwargs() == {"address": "ray://ray-head:10001"}


LOOP = {
    "predictions/batch_predictions": "serving",
    "monitoring/drift_report": "monitoring",
    "monitoring/model_performance": "monitoring",
}
AUTOMATED_DAILY = [
    "stg_flights",
    "stg_weather",
    "fct_flights",
    "features/flight_features",
    "features/online_store",
    *LOOP,
]


def test_the_loop_moves_by_itself_with_sensors_schedule_and_automation_on_by_default():
    defs = build_definitions.__wrapped__("local")
    graph = defs.resolve_asset_graph()
    for key, group in LOOP.items():
        node = graph.get(dg.AssetKey.from_user_string(key))
        assert node.group_name == group and node.description and node.owners == ["team:ml-platform"], key
        assert node.partitions_def is not None, key
    drift = graph.get(dg.AssetKey(["monitoring", "drift_report"]))
    assert "evidently" in drift.kinds
    assert dg.AssetKey(["predictions", "batch_predictions"]) in drift.parent_keys
    predictions = graph.get(dg.AssetKey(["predictions", "batch_predictions"]))
    assert dg.AssetKey(["models", "registered_model"]) in predictions.parent_keys
    (check,) = graph.get_check_keys_for_assets({predictions.key})
    assert graph.get_check_spec(check).blocking  # the drift report never reads a half-scored day

    for key in AUTOMATED_DAILY:
        condition = graph.get(dg.AssetKey.from_user_string(key)).automation_condition
        assert condition is not None and condition.get_label() == "on new data, upstream checks passed", key
    for key in MODELS:  # training belongs to the retraining sensor and schedule, not to automation
        assert graph.get(dg.AssetKey.from_user_string(key)).automation_condition is None, key

    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {"landing_zone_sensor", "daily_graph_automation", "retraining_sensor"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    (schedule,) = defs.schedules
    assert schedule.name == "retraining_floor_schedule"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def("retrain_model")
    assert dg.AssetKey(["features", "training_set"]) in job.asset_layer.selected_asset_keys
    assert "retraining" in defs.resources


def test_a_password_in_the_redis_url_never_reaches_the_resource_config_the_ui_shows(monkeypatch):
    """Credentials and endpoints are EnvVars in the definitions: the repository snapshot the webserver
    renders (resource config included) holds the variables' names, never their values."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    secrets = {
        "MLOPS_REDIS_URL": "redis.internal:6380,password=s3cr3t-redis,ssl=true",
        "MLOPS_S3_ENDPOINT_URL": "https://minio.internal:9000",
        "MLFLOW_TRACKING_URI": "https://ml:s3cr3t-mlflow@mlflow.internal",
        "DBT_PG_PASSWORD": "s3cr3t-pg",
        "DBT_PG_HOST": "pg.internal",
        "MLOPS_RAY_ADDRESS": "ray://ray.internal:10001",
        "MLOPS_SPARK_REMOTE": "sc://spark.internal:15002",
    }
    monkeypatch.setenv("MLOPS_S3_BUCKET", "platform")
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    defs = build_definitions.__wrapped__("production")
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    for name, value in secrets.items():
        assert value not in snapshot, f"{name}'s value is frozen into the definitions"
        assert name in snapshot, f"{name} is not passed to a resource as an EnvVar"


def test_no_asset_description_holds_a_placeholder_the_ui_would_take_for_an_html_tag():
    """The UI renders descriptions as Markdown, where `<day>` outside a code span is an HTML tag and
    disappears; placeholders are written `{day}` in backticks or in words."""
    import re

    graph = build_definitions.__wrapped__("local").resolve_asset_graph()
    described = 0
    for key in graph.get_all_asset_keys():
        description = graph.get(key).description or ""
        described += bool(description)
        prose = re.sub(r"`[^`]*`", "", re.sub(r"```.*?```", "", description, flags=re.DOTALL))
        tags = re.findall(r"</?[A-Za-z][^<>\s]*>", prose)
        assert not tags, f"{key.to_user_string()}: {tags} in its description"
    assert described > 20
