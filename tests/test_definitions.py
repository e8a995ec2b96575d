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


def test_loading_the_code_location_imports_no_heavy_library():
    probe = Path(__file__).parent / "probes" / "load_definitions.py"
    completed = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, check=True)
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert set(RAW) <= set(report["assets"])


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
