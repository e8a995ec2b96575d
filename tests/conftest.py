"""Shared fixtures: a local landing zone and lake in a temporary directory, and in-process runs."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.lib.calendar import partition_range_tags
from mlops_assets.lib.storage import LocalObjectStore

# Great Expectations would otherwise try to send usage statistics.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

FIRST_DAYS = (dt.date(2013, 1, 1), dt.date(2013, 1, 3))  # a small window of real data


@pytest.fixture
def stores(tmp_path: Path) -> tuple[LocalObjectStore, LocalObjectStore]:
    """(landing_zone, lake) on the local file system."""
    return LocalObjectStore(root=str(tmp_path / "landing")), LocalObjectStore(root=str(tmp_path / "lake"))


@pytest.fixture
def replayed(stores) -> tuple[LocalObjectStore, LocalObjectStore]:
    """The first three days of 2013 and the reference tables, delivered into the landing zone."""
    from mlops_assets.replay import replay

    landing, lake = stores
    replay(landing, *FIRST_DAYS)
    return landing, lake


def raw_assets() -> list[dg.AssetsDefinition]:
    from mlops_assets.defs.ingestion.assets import build_raw_assets

    return list(build_raw_assets())


def materialize_raw(
    landing,
    lake,
    selection: list[str],
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize raw assets in-process against the given stores (and instance, if any)."""
    tags = partition_range_tags(*partition_range) if partition_range else {}
    return dg.materialize(
        raw_assets(),
        selection=selection,
        partition_key=partition_key,
        resources={"landing_zone": landing, "lake": lake},
        instance=instance,
        tags=tags,
        raise_on_error=raise_on_error,
        run_config=run_config,
    )


@pytest.fixture
def reference_ready(replayed):
    """Landing zone replayed and the reference tables materialized into the lake."""
    landing, lake = replayed
    materialize_raw(landing, lake, ["raw/airlines", "raw/airports", "raw/planes"])
    return landing, lake
