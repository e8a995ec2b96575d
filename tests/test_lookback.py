"""The lookback of `features/flight_features` as a dependency: day D of the features reads D-29..D of
fct_flights, so it waits until that whole window is in the warehouse, and a late or re-delivered day
recomputes exactly the days whose window contains it.

The automation conditions and the partition mapping are the platform's own (`on_new_data`, the
features asset's `lookback`), on a small graph of the daily assets evaluated as the daemon evaluates it
(`dg.evaluate_automation_conditions`, ticks in a row with the cursor carried over). Where values are
compared, the features are the DuckDB implementation (tested equal to the Spark asset) on real days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.defs.features.assets import build_feature_assets, lookback
from mlops_assets.features.flight_features import DAY_COLUMN, LOOKBACK_DAYS
from mlops_assets.features.inputs import WEATHER_LOOKBACK_DAYS
from mlops_assets.lib.automation import on_new_data
from mlops_assets.lib.calendar import partition_range_tags
from mlops_assets.lib.keys import FCT_FLIGHTS, STG_WEATHER

WINDOW = LOOKBACK_DAYS + 1  # days of features that read one day of fct_flights: D..D+29
DOWNSTREAM = ("online_store", "batch_predictions", "drift_report")
Compute = Callable[[dg.AssetExecutionContext], None]


def _noop(context: dg.AssetExecutionContext) -> None: ...


def build_graph(
    partitions: dg.DailyPartitionsDefinition,
    mapping: dg.PartitionMapping | None = None,
    fct: Compute = _noop,
    features: Compute = _noop,
) -> list[dg.AssetsDefinition]:
    """raw -> fct_flights -> flight_features (over `mapping`, default the asset's lookback) ->
    online_store, batch_predictions -> drift_report: the daily graph's shape and automation rule."""
    mapping = mapping or lookback(LOOKBACK_DAYS)
    daily = {
        "partitions_def": partitions,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "automation_condition": on_new_data(),
    }

    @dg.asset(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def raw() -> None: ...

    @dg.asset(deps=[raw], **daily)
    def fct_flights(context) -> None:  # untyped: the annotation is a string here
        fct(context)

    @dg.asset(deps=[dg.AssetDep(fct_flights, partition_mapping=mapping)], **daily)
    def flight_features(context) -> None:
        features(context)

    @dg.asset(deps=[flight_features], **daily)
    def online_store() -> None: ...

    @dg.asset(deps=[flight_features], **daily)
    def batch_predictions() -> None: ...

    @dg.asset(deps=[batch_predictions], **daily)
    def drift_report() -> None: ...

    return [raw, fct_flights, flight_features, online_store, batch_predictions, drift_report]


class Daemon:
    """Automation ticks against one instance; each tick's request executed as ranged runs, one per
    block of consecutive days that request the same assets (as single-run backfills do)."""

    def __init__(self, assets: list[dg.AssetsDefinition], instance: dg.DagsterInstance) -> None:
        self.assets, self.instance = assets, instance
        self.partitions = assets[0].partitions_def
        self.cursor = dg.evaluate_automation_conditions(defs=assets, instance=instance).cursor

    def land(self, *days: str) -> None:
        """The landing sensor's run of each day (a re-delivery is the same run again)."""
        for day in days:
            self.run({dg.AssetKey("raw")}, day, day)

    def tick(self) -> dict[str, set[str]]:
        result = dg.evaluate_automation_conditions(
            defs=self.assets, instance=self.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        return {
            key.to_user_string(): set(parts)
            for key, parts in result._requested_partitions_by_asset_key.items()
        }

    def execute(self, requested: dict[str, set[str]]) -> None:
        keys_by_day: dict[str, set[dg.AssetKey]] = {}
        for name, days in requested.items():
            for day in days:
                keys_by_day.setdefault(day, set()).add(dg.AssetKey(name))
        block: list[str] = []
        for day in self.partitions.get_partition_keys():
            if block and keys_by_day.get(day) == keys_by_day[block[0]] and self._next(block[-1]) == day:
                block.append(day)
                continue
            if block:
                self.run(keys_by_day[block[0]], block[0], block[-1])
            block = [day] if day in keys_by_day else []
        if block:
            self.run(keys_by_day[block[0]], block[0], block[-1])

    def settle(self, max_ticks: int = 6) -> dict[str, set[str]]:
        """Ticks and runs until a tick requests nothing; returns every partition that ran, per asset."""
        ran: dict[str, set[str]] = {}
        for _ in range(max_ticks):
            requested = self.tick()
            if not requested:
                return ran
            self.execute(requested)
            for name, days in requested.items():
                ran.setdefault(name, set()).update(days)
        raise AssertionError(f"automation still requesting after {max_ticks} ticks: {ran}")

    def run(self, keys: set[dg.AssetKey], first: str, last: str) -> None:
        result = dg.materialize(
            self.assets,
            selection=sorted(keys, key=dg.AssetKey.to_user_string),
            instance=self.instance,
            tags=partition_range_tags(first, last),
        )
        assert result.success

    def _next(self, day: str) -> str:
        return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def days(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def shifted(day: str, offset: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=offset)).isoformat()


# ---- the dependency of the real asset ---------------------------------------------------------------------


def test_the_features_asset_depends_on_its_lookback_window(tmp_path):
    from mlops_assets.lib.settings import load_settings

    (features,) = build_feature_assets(load_settings({"MLOPS_HOME": str(tmp_path)}))
    assert {dep.asset_key for dep in features.specs_by_key[features.key].deps} == {FCT_FLIGHTS, STG_WEATHER}
    flights = features.get_partition_mapping(FCT_FLIGHTS)
    weather = features.get_partition_mapping(STG_WEATHER)
    assert flights == lookback(LOOKBACK_DAYS) == dg.TimeWindowPartitionMapping(-29, 0, True)
    assert weather == lookback(WEATHER_LOOKBACK_DAYS)
    partitions = features.partitions_def
    # The window of one day, and clipped at the calendar's first day.
    upstream = flights.get_upstream_mapped_partitions_result_for_partitions(
        partitions.subset_with_partition_keys(["2013-03-15"]), partitions, partitions
    ).partitions_subset
    assert sorted(upstream.get_partition_keys()) == days("2013-02-14", "2013-03-15")
    first = flights.get_upstream_mapped_partitions_result_for_partitions(
        partitions.subset_with_partition_keys(["2013-01-05"]), partitions, partitions
    ).partitions_subset
    assert sorted(first.get_partition_keys()) == days("2013-01-01", "2013-01-05")


# ---- how many partitions a late day recomputes ------------------------------------------------------------

CALENDAR = dg.DailyPartitionsDefinition(start_date="2013-01-01", end_date="2013-05-01")  # 120 days
ALL_DAYS = CALENDAR.get_partition_keys()


def expected_cascade(late: str, last: str = ALL_DAYS[-1]) -> set[str]:
    """The claim: D..D+29, clipped to the last day of the calendar."""
    return set(days(late, min(shifted(late, LOOKBACK_DAYS), last)))


@pytest.mark.parametrize("late", ["2013-01-01", "2013-02-10", "2013-04-20"])
def test_a_late_day_waits_its_window_then_runs_exactly_the_days_that_read_it(late):
    assets = build_graph(CALENDAR)
    with dg.DagsterInstance.ephemeral() as instance:
        daemon = Daemon(assets, instance)
        daemon.land(*(d for d in ALL_DAYS if d != late))
        ran = daemon.settle()
        waiting = expected_cascade(late)
        assert ran["fct_flights"] == set(ALL_DAYS) - {late}
        # Every day whose window contains the late day waits; every other day ran.
        for name in ("flight_features", *DOWNSTREAM):
            assert ran[name] == set(ALL_DAYS) - waiting, name

        daemon.land(late)
        requested = daemon.tick()
        assert requested["fct_flights"] == {late}
        for name in ("flight_features", *DOWNSTREAM):
            assert requested[name] == waiting, name  # one tick: fct_flights and the window's days
        assert len(requested["flight_features"]) == min(WINDOW, len(ALL_DAYS) - ALL_DAYS.index(late))
        daemon.execute(requested)
        assert daemon.tick() == {}  # nothing more: each waiting day ran once

        # A re-delivery of the day recomputes the same days (their delay history changed), no more.
        daemon.land(late)
        again = daemon.settle()
        assert again == {"fct_flights": {late}, **{n: waiting for n in ("flight_features", *DOWNSTREAM)}}


def test_days_in_order_run_one_day_each():
    """The normal flow is unchanged: each landed day runs itself, from fct_flights to the drift report,
    in one tick, and recomputes no earlier day."""
    assets = build_graph(CALENDAR)
    with dg.DagsterInstance.ephemeral() as instance:
        daemon = Daemon(assets, instance)
        for day in ALL_DAYS[:35]:
            daemon.land(day)
            requested = daemon.tick()
            assert requested == {n: {day} for n in ("fct_flights", "flight_features", *DOWNSTREAM)}, day
            daemon.execute(requested)
        assert daemon.tick() == {}


def test_a_home_whose_data_starts_later_waits_for_days_that_never_land_until_run_by_hand():
    """Data from March 1 on: the features of March 1..29 read February, which never lands, so
    automation holds them (their deps stay missing); one ranged run by hand releases them and
    automation carries them downstream."""
    assets = build_graph(CALENDAR)
    landed = days("2013-03-01", "2013-04-30")
    held = set(days("2013-03-01", "2013-03-29"))  # March 30 reads March 1..30
    with dg.DagsterInstance.ephemeral() as instance:
        daemon = Daemon(assets, instance)
        daemon.land(*landed)
        ran = daemon.settle()
        assert ran["fct_flights"] == set(landed)
        assert ran["flight_features"] == set(landed) - held
        daemon.run({dg.AssetKey("flight_features")}, "2013-03-01", "2013-03-29")  # by hand
        ran = daemon.settle()
        assert ran == {n: held for n in DOWNSTREAM}


# ---- the same features whatever the landing order -----------------------------------------------------

REAL_DAYS = days("2013-01-01", "2013-01-12")
DATE_COLUMNS = {"flights": "flight_date", "weather": "weather_date"}
TABLE_KEYS = {
    "flight_schedule": ["flight_id"],
    "weather_hourly": ["origin", "event_timestamp"],
    "delay_stats": ["entity_type", "entity_id", "event_timestamp"],
}
OUT_OF_ORDER = [
    "2013-01-01", "2013-01-02", "2013-01-03", "2013-01-05", "2013-01-06", "2013-01-07", "2013-01-08",
    "2013-01-04", "2013-01-09", "2013-01-10", "2013-01-12", "2013-01-11",
]  # fmt: skip


@pytest.fixture(scope="module")
def real_inputs(training_set_home):
    """fct_flights and stg_weather of the real days, as the asset reads them (Arrow)."""
    from mlops_assets.features.inputs import read_warehouse_inputs

    first, last = dt.date.fromisoformat(REAL_DAYS[0]), dt.date.fromisoformat(REAL_DAYS[-1])
    return read_warehouse_inputs(training_set_home / "warehouse.duckdb", first, last)


class Warehouse:
    """A warehouse that holds only the days fct_flights has run for, and features computed from it
    (DuckDB) for the partition window, one Parquet file per table per day."""

    def __init__(self, root: Path, flights, weather) -> None:
        self.root, self.inputs = root, {"flights": flights, "weather": weather}

    def fct(self, context: dg.AssetExecutionContext) -> None:
        """dbt's run of the days: their rows, and only theirs, are in the warehouse from now on."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        for day in context.partition_keys:
            for name, table in self.inputs.items():
                folder = self.root / "warehouse" / name
                folder.mkdir(parents=True, exist_ok=True)
                rows = table.filter(pc.equal(table[DATE_COLUMNS[name]], dt.date.fromisoformat(day)))
                pq.write_table(rows, folder / f"{day}.parquet")

    def features(self, context: dg.AssetExecutionContext) -> None:
        """The asset's reads (the lookback of read_warehouse_inputs), computed with DuckDB."""
        from tests.test_flight_features import duckdb_tables

        window = context.partition_time_window
        first, last = window.start.date(), (window.end - dt.timedelta(days=1)).date()
        flights = self._read("flights", first - dt.timedelta(days=LOOKBACK_DAYS), last)
        weather = self._read("weather", first - dt.timedelta(days=WEATHER_LOOKBACK_DAYS), last)
        tables = duckdb_tables(flights, weather, first, last)
        for table, frame in tables.items():
            folder = self.root / "features" / table
            folder.mkdir(parents=True, exist_ok=True)
            for day in context.partition_keys:
                rows = frame[frame[DAY_COLUMN] == day].drop(columns=DAY_COLUMN)
                rows.reset_index(drop=True).to_parquet(folder / f"{day}.parquet", index=False)

    def _read(self, name: str, low: dt.date, high: dt.date):
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = sorted((self.root / "warehouse" / name).glob("*.parquet"))
        parts = [pq.read_table(f) for f in files if low <= dt.date.fromisoformat(f.stem) <= high]
        return pa.concat_tables(parts) if parts else self.inputs[name].schema.empty_table()

    def read_features(self) -> dict[tuple[str, str], pd.DataFrame]:
        """(table, day) -> rows in key order (DuckDB's row order is its own)."""
        tables = {}
        for f in sorted((self.root / "features").glob("*/*.parquet")):
            key = TABLE_KEYS.get(
                f.parent.name, [f.parent.name.removeprefix("delay_stats_"), "event_timestamp"]
            )
            tables[(f.parent.name, f.stem)] = pd.read_parquet(f).sort_values(key, ignore_index=True)
        return tables


def land_and_settle(root: Path, inputs, order: list[str], mapping=None) -> dict:
    warehouse = Warehouse(root, *inputs)
    partitions = dg.DailyPartitionsDefinition(start_date=REAL_DAYS[0], end_date=shifted(REAL_DAYS[-1], 1))
    assets = build_graph(partitions, mapping, fct=warehouse.fct, features=warehouse.features)
    with dg.DagsterInstance.ephemeral() as instance:
        daemon = Daemon(assets, instance)
        for day in order:  # one day at a time, each followed by the daemon's ticks and runs
            daemon.land(day)
            daemon.settle()
    return warehouse.read_features()


def assert_same_features(one: dict, other: dict) -> None:
    assert one.keys() == other.keys() and len(one) == 7 * len(REAL_DAYS)
    for key, frame in one.items():
        pd.testing.assert_frame_equal(frame, other[key], check_exact=True, obj=str(key))


def test_days_landed_out_of_order_give_the_features_of_days_landed_in_order(real_inputs, tmp_path):
    in_order = land_and_settle(tmp_path / "in_order", real_inputs, REAL_DAYS)
    out_of_order = land_and_settle(tmp_path / "out_of_order", real_inputs, OUT_OF_ORDER)
    assert_same_features(in_order, out_of_order)
    assert sum(len(f) for (table, _), f in in_order.items() if table == "delay_stats") > 0

    # The comparison can fail: with a dependency on day D only (the rule before), days 5-8 ran
    # before day 4 was in the warehouse and their delay history misses it.
    same_day_only = dg.TimeWindowPartitionMapping()
    wrong = land_and_settle(tmp_path / "same_day_only", real_inputs, OUT_OF_ORDER, same_day_only)
    differ = {
        day
        for (table, day), frame in wrong.items()
        if table == "delay_stats" and not frame.equals(in_order[(table, day)])
    }
    assert {"2013-01-05", "2013-01-06", "2013-01-07", "2013-01-08"} <= differ
