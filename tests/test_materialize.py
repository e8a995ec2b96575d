"""Materialize raw partitions in-process on the local profile from files written by the replay."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

from tests.conftest import materialize_raw

FLIGHTS = dg.AssetKey(["raw", "flights"])
WEATHER = dg.AssetKey(["raw", "weather"])


def _landed_rows(landing, key: str) -> int:
    return len(pd.read_csv(landing.uri(key))) if landing.exists(key) else 0


def test_partition_materializes_typed_parquet_with_accounting(reference_ready):
    landing, lake = reference_ready
    result = materialize_raw(landing, lake, ["raw/flights", "raw/weather"], partition_key="2013-01-02")
    assert result.success

    flights = lake.read_parquet("raw/flights/2013-01-02.parquet")
    assert len(flights) == _landed_rows(landing, "flights/2013-01-02.csv") == 943
    assert str(flights["time_hour"].dtype) == "datetime64[ns, UTC]"
    assert str(flights["dep_delay"].dtype) == "float64" and str(flights["flight"].dtype) == "Int64"
    local_days = flights["time_hour"].dt.tz_convert("America/New_York").dt.date.astype(str)
    assert set(local_days) == {"2013-01-02"}

    (materialization,) = [
        m for m in result.asset_materializations_for_node("raw__flights") if m.asset_key == FLIGHTS
    ]
    meta = materialization.metadata
    assert meta["rows_in"].value == meta["rows_accepted"].value + meta["rows_quarantined"].value == 943
    assert meta["dagster/row_count"].value == 943
    assert [c.name for c in meta["dagster/column_schema"].schema.columns][:3] == ["year", "month", "day"]
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"great_expectations_suite": True, "quarantine_rate": True}


def test_single_run_backfill_covers_a_range_in_one_run(reference_ready):
    landing, lake = reference_ready
    result = materialize_raw(
        landing, lake, ["raw/flights", "raw/weather"], partition_range=("2013-01-01", "2013-01-03")
    )
    assert result.success
    for day in ("2013-01-01", "2013-01-02", "2013-01-03"):
        assert len(lake.read_parquet(f"raw/weather/{day}.parquet")) == _landed_rows(
            landing, f"weather/{day}.csv"
        )
    assert (
        sum(len(lake.read_parquet(f"raw/flights/2013-01-0{d}.parquet")) for d in (1, 2, 3)) == 842 + 943 + 914
    )


def test_flights_need_the_airlines_reference(replayed):
    landing, lake = replayed
    result = materialize_raw(landing, lake, ["raw/flights"], partition_key="2013-01-01", raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("raw__flights")
    assert "materialize raw/airlines before raw/flights" in str(failure.user_failure_data.description)


def test_reference_tables_are_stored_whole(reference_ready):
    _, lake = reference_ready
    assert len(lake.read_parquet("raw/airlines.parquet")) == 16
    assert len(lake.read_parquet("raw/airports.parquet")) == 1458
    assert len(lake.read_parquet("raw/planes.parquet")) == 3322


def test_a_day_without_rows_is_delivered_as_a_header_only_file_and_materializes_empty(stores):
    from mlops_assets.replay import replay

    landing, lake = stores
    replay(
        landing, dt.date(2013, 12, 31), dt.date(2013, 12, 31), tables=("weather",), include_reference=False
    )
    assert landing.read_bytes("weather/2013-12-31.csv").decode().count("\n") == 1  # the header alone
    result = materialize_raw(landing, lake, ["raw/weather"], partition_key="2013-12-31")
    assert result.success
    assert len(lake.read_parquet("raw/weather/2013-12-31.parquet")) == 0
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"great_expectations_suite": True, "quarantine_rate": True}


def test_a_partition_without_a_landed_file_fails_and_names_the_file(reference_ready):
    landing, lake = reference_ready
    result = materialize_raw(landing, lake, ["raw/weather"], partition_key="2013-02-01", raise_on_error=False)
    assert not result.success
    description = str(result.failure_data_for_node("raw__weather").user_failure_data.description)
    assert f"no landed file {landing.uri('weather/2013-02-01.csv')} for partition 2013-02-01" in description
    assert not lake.exists("raw/weather/2013-02-01.parquet")
