"""The code location: complete, described, cheap to load, profile chosen at build time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.definitions import build_definitions
from mlops_assets.lib.s3_store import S3ObjectStore
from mlops_assets.lib.settings import load_settings
from mlops_assets.lib.storage import LocalObjectStore

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


def test_training_stage_is_one_lineage_with_gpu_steps_in_the_gpu_pool(monkeypatch):
    from mlops_assets.defs.training.resources import ComputeResource, MlflowResource

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
