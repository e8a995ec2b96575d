"""The features stage: point-in-time correctness of the Spark features on tiny synthetic tables,
parity with the DuckDB implementation on three real days, and the asset's files and metadata.

One embedded Spark session (local[2]) is shared by the module; the asset reuses it (getOrCreate).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_assets.features import duckdb_features
from mlops_assets.features import flight_features as ff
from mlops_assets.resources.spark import SparkResource

D = dt.date(2013, 1, 10)  # a Thursday; local midnight = 05:00 UTC
S0 = pd.Timestamp("2013-01-10 05:00", tz="UTC")  # the first snapshot of D
H = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)
REAL_DAYS = ("2013-01-01", "2013-01-03")

FLIGHT_SCHEMA = pa.schema(
    [
        ("flight_id", pa.string()),
        ("flight_date", pa.date32()),
        ("carrier", pa.string()),
        ("origin", pa.string()),
        ("dest", pa.string()),
        ("distance", pa.float64()),
        ("sched_dep_local", pa.timestamp("us")),
        ("sched_dep_utc", pa.timestamp("us", tz="UTC")),
        ("arrived_at_utc", pa.timestamp("us", tz="UTC")),
        ("arr_delay", pa.float64()),
        ("plane_year_built", pa.int32()),
        ("plane_seats", pa.int32()),
    ]
)
WEATHER_SCHEMA = pa.schema(
    [
        ("origin", pa.string()),
        ("weather_date", pa.date32()),
        ("observed_hour_utc", pa.timestamp("us", tz="UTC")),
        ("available_at_utc", pa.timestamp("us", tz="UTC")),
        *((source, pa.float64()) for source in ff.WEATHER_COLUMNS.values()),
    ]
)


@pytest.fixture(scope="module")
def spark():
    resource = SparkResource(master="local[2]")
    return resource.get_session()


def flight(fid, carrier, departs_utc, arrived_utc=None, delay=None, origin="JFK", dest="ATL", **extra):
    departs = pd.Timestamp(departs_utc, tz="UTC")
    local = departs.tz_convert("America/New_York")
    return {
        "flight_id": fid,
        "flight_date": local.date(),
        "carrier": carrier,
        "origin": origin,
        "dest": dest,
        "distance": 760.0,
        "sched_dep_local": local.tz_localize(None).to_pydatetime(),
        "sched_dep_utc": departs.to_pydatetime(),
        "arrived_at_utc": None
        if arrived_utc is None
        else pd.Timestamp(arrived_utc, tz="UTC").to_pydatetime(),
        "arr_delay": delay,
        "plane_year_built": extra.get("year_built"),
        "plane_seats": extra.get("seats"),
    }


def synthetic_flights() -> pa.Table:
    rows = [
        # AA: departs on D, lands at 15:30 UTC, 30 min late.
        flight("AA1", "AA", "2013-01-10 13:00", "2013-01-10 15:30", 30.0, year_built=2003, seats=150),
        # BB: a flight of D-1 (local) that lands on D at exactly 06:00 UTC, on time.
        flight("BB1", "BB", "2013-01-10 02:00", "2013-01-10 06:00", 10.0),
        # CC: landings exactly 1, 7 and 28 days before the first snapshot S0 (boundaries of windows).
        flight("CC1", "CC", str(S0 - DAY - 3 * H), str(S0 - DAY), 20.0),
        flight("CC7", "CC", str(S0 - 7 * DAY - 3 * H), str(S0 - 7 * DAY), -5.0),
        flight("CC28", "CC", str(S0 - 28 * DAY - 3 * H), str(S0 - 28 * DAY), 40.0),
        # CC cancelled on D: never counted.
        flight("CCX", "CC", "2013-01-10 14:00", None, None),
        # ZZ: seen only 29+ days before D: no snapshots on D.
        flight("ZZ1", "ZZ", str(S0 - 30 * DAY), str(S0 - 30 * DAY + 2 * H), 5.0),
        # Congestion at LGA on D: three departures in local hour 08, one at 09:00.
        flight("L1", "DL", "2013-01-10 13:00", origin="LGA"),
        flight("L2", "DL", "2013-01-10 13:15", origin="LGA"),
        flight("L3", "DL", "2013-01-10 13:59", origin="LGA"),
        flight("L4", "DL", "2013-01-10 14:00", origin="LGA"),
    ]
    return pa.Table.from_pylist(rows, schema=FLIGHT_SCHEMA)


def synthetic_weather() -> pa.Table:
    rows = []
    first = pd.Timestamp("2013-01-10 05:00", tz="UTC")  # local midnight of D
    for i in range(8):
        observed = first + i * H
        if i == 4:
            continue  # a missing hour
        values = dict.fromkeys(ff.WEATHER_COLUMNS.values(), 1.0)
        values.update(
            precip_in=0.1 * i, wind_speed_mph=float(i), visibility_mi=10.0 - i, pressure_mb=1000.0 + i,
            temp_f=30.0 + 2 * i, dewpoint_f=20.0 - i, humidity_pct=50.0 + 5 * i, wind_dir_deg=10.0 * i,
        )  # fmt: skip
        rows.append(
            {
                "origin": "JFK",
                "weather_date": D,
                "observed_hour_utc": observed.to_pydatetime(),
                "available_at_utc": (observed + H).to_pydatetime(),
                **values,
            }
        )
    return pa.Table.from_pylist(rows, schema=WEATHER_SCHEMA)


def spark_tables(spark, flights: pa.Table, weather: pa.Table, first=D, last=D) -> dict[str, pd.DataFrame]:
    tables = ff.build_features(
        spark, spark.createDataFrame(flights), spark.createDataFrame(weather), first, last
    )
    return {name: utc(frame.toPandas()) for name, frame in tables.items()}


def duckdb_tables(flights: pa.Table, weather: pa.Table, first=D, last=D) -> dict[str, pd.DataFrame]:
    import duckdb

    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.register("flights", flights)
        con.register("weather", weather)
        names = duckdb_features.build_features(con, first, last)
        return {table: utc(con.table(name).df()) for table, name in names.items()}


def utc(frame: pd.DataFrame) -> pd.DataFrame:
    """event_timestamp as datetime64[ns, UTC] whatever the engine returned."""
    if "event_timestamp" in frame:
        column = frame["event_timestamp"]
        column = column.dt.tz_localize("UTC") if column.dt.tz is None else column.dt.tz_convert("UTC")
        frame["event_timestamp"] = column.astype("datetime64[ns, UTC]")
    return frame


@pytest.fixture(scope="module")
def synthetic(spark):
    flights, weather = synthetic_flights(), synthetic_weather()
    return spark_tables(spark, flights, weather), duckdb_tables(flights, weather)


def at(stats: pd.DataFrame, entity: str, when: pd.Timestamp) -> pd.Series:
    rows = stats[(stats["entity_id"] == entity) & (stats["event_timestamp"] == when)]
    assert len(rows) == 1, (entity, when, rows)
    return rows.iloc[0]


def test_snapshots_are_the_utc_hours_of_the_local_day():
    assert len(ff.snapshot_hours(D, D)) == 24
    assert len(ff.snapshot_hours(dt.date(2013, 3, 10), dt.date(2013, 3, 10))) == 23
    assert len(ff.snapshot_hours(dt.date(2013, 11, 3), dt.date(2013, 11, 3))) == 25
    assert ff.snapshot_hours(D, D)[0][1] == int(S0.timestamp())


@pytest.mark.parametrize("engine", [0, 1], ids=["spark", "duckdb"])
def test_an_outcome_counts_only_once_it_happened(synthetic, engine):
    stats = synthetic[engine]["delay_stats"]
    carriers = stats[stats["entity_type"] == "carrier"]
    assert set(carriers["entity_id"]) == {"AA", "BB", "CC", "DL"}  # ZZ: seen 29+ days before D only
    assert carriers.groupby("entity_id").size().eq(24).all()
    # AA lands at 15:30 UTC on D: not in the 15:00 snapshot, in the 16:00 one (flights of D itself).
    assert at(stats, "AA", pd.Timestamp("2013-01-10 15:00", tz="UTC"))["flights_1d"] == 0
    assert pd.isna(at(stats, "AA", pd.Timestamp("2013-01-10 15:00", tz="UTC"))["late_rate_1d"])
    after = at(stats, "AA", pd.Timestamp("2013-01-10 16:00", tz="UTC"))
    assert (after["flights_1d"], after["late_rate_1d"], after["mean_arr_delay_1d"]) == (1, 1.0, 30.0)
    # BB (a flight of D-1) lands at exactly 06:00 UTC on D: counted from the 07:00 snapshot on.
    assert at(stats, "BB", S0 + H)["flights_1d"] == 0
    assert at(stats, "BB", S0 + 2 * H)["flights_28d"] == 1
    assert at(stats, "BB", S0 + 2 * H)["late_rate_28d"] == 0.0


@pytest.mark.parametrize("engine", [0, 1], ids=["spark", "duckdb"])
def test_window_boundaries(synthetic, engine):
    stats = synthetic[engine]["delay_stats"]
    first, second = at(stats, "CC", S0), at(stats, "CC", S0 + H)
    # At S0 the landings at S0 - 1, 7, 28 days are inside [S0 - W days, S0); an hour later they are not.
    assert [first[f"flights_{w}d"] for w in (1, 7, 28)] == [1, 2, 3]
    assert [second[f"flights_{w}d"] for w in (1, 7, 28)] == [0, 1, 2]
    assert first["mean_arr_delay_7d"] == pytest.approx(7.5) and first["late_rate_28d"] == pytest.approx(2 / 3)
    assert pd.isna(second["late_rate_1d"]) and second["mean_arr_delay_28d"] == pytest.approx(7.5)
    # The cancelled flight on D never counts.
    assert at(stats, "CC", S0 + 23 * H)["flights_28d"] == 2
    by_type = synthetic[engine]["delay_stats_carrier"]
    assert list(by_type.columns) == ["carrier", "event_timestamp", *ff.STAT_COLUMNS, ff.DAY_COLUMN]
    assert len(by_type) == len(stats[stats["entity_type"] == "carrier"])


@pytest.mark.parametrize("engine", [0, 1], ids=["spark", "duckdb"])
def test_weather_uses_only_available_observations(synthetic, engine):
    weather = synthetic[engine]["weather_hourly"].sort_values("event_timestamp").reset_index(drop=True)
    observed = weather["event_timestamp"] - H
    assert (weather["event_timestamp"] == observed + H).all() and len(weather) == 7
    row = weather[observed == S0 + 3 * H].iloc[0]  # hour 3: window = hours 1, 2, 3
    assert row["precip_3h"] == pytest.approx(0.6) and row["wind_speed_3h"] == pytest.approx(2.0)
    assert row["visib_min_3h"] == 7.0 and row["pressure_change_3h"] == pytest.approx(3.0)
    after_gap = weather[observed == S0 + 5 * H].iloc[0]  # hour 4 is missing: window = hours 3, 5
    assert after_gap["precip_3h"] == pytest.approx(0.8) and after_gap["pressure_change_3h"] == pytest.approx(
        3.0
    )
    # Every change is value(H) - value(H - 3 h): hour 3 against hour 0.
    changes = {"temp": 6.0, "dewp": -3.0, "humid": 15.0, "wind_speed": 3.0, "visib": -3.0, "pressure": 3.0}
    assert {name: row[f"{name}_change_3h"] for name in changes} == pytest.approx(changes)
    assert row["wind_dir"] == 30.0
    assert set(ff.WEATHER_CHANGES) == set(changes)
    last = weather[observed == S0 + 7 * H].iloc[0]  # hour 4 is missing: no change at hour 7
    assert all(pd.isna(last[f"{name}_change_3h"]) for name in changes)
    # Point in time: at H+0:30 the row of hour H is not visible yet (the latest is H-1's); at H+1 it is.
    lookups = pd.DataFrame({"t": [S0 + 3 * H + pd.Timedelta(minutes=30), S0 + 4 * H]})
    seen = pd.merge_asof(lookups, weather, left_on="t", right_on="event_timestamp")
    assert list(seen["event_timestamp"] - H) == [S0 + 2 * H, S0 + 3 * H]


@pytest.mark.parametrize("engine", [0, 1], ids=["spark", "duckdb"])
def test_schedule_congestion_and_calendar(synthetic, engine):
    schedule = synthetic[engine]["flight_schedule"].set_index("flight_id")
    assert set(schedule.index) == {"AA1", "BB1", "CCX", "L1", "L2", "L3", "L4"} - {"BB1"}
    lga = schedule.loc[["L1", "L2", "L3", "L4"]]
    assert list(lga["origin_hour_departures"]) == [3, 3, 3, 1]
    assert list(lga["sched_dep_hour_local"]) == [8, 8, 8, 9]
    assert (lga["origin_day_departures"] == 4).all() and schedule.loc["AA1", "origin_day_departures"] == 2
    aa = schedule.loc["AA1"]
    assert aa["event_timestamp"] == pd.Timestamp("2013-01-09 13:00", tz="UTC")  # sched_dep_utc - 24 h
    assert (aa["day_of_week"], aa["month"], aa["route"]) == (4, 1, "JFK-ATL")
    assert aa["plane_age_years"] == 10.0 and aa["plane_seats"] == 150.0
    assert pd.isna(schedule.loc["L1", "plane_age_years"])


# ---------------------------------------------------------------------------------------------------
# Three real days: the asset, its files and metadata, and parity with DuckDB.


@pytest.fixture(scope="module")
def real_home(tmp_path_factory):
    from tests.conftest import build_real_warehouse

    home = tmp_path_factory.mktemp("features_home")
    build_real_warehouse(home, REAL_DAYS)
    return home


@pytest.fixture(scope="module")
def materialized(real_home, spark):
    from mlops_assets.defs.features.assets import build_feature_assets
    from mlops_assets.lib.calendar import partition_range_tags
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.warehouse import DuckDBWarehouse

    settings = load_settings({"MLOPS_HOME": str(real_home)})
    result = dg.materialize(
        build_feature_assets(settings),
        resources={
            "spark": SparkResource(master="local[2]"),
            "lake": LocalObjectStore(root=str(real_home / "lake")),
            "warehouse": DuckDBWarehouse(path=str(real_home / "warehouse.duckdb")),
        },
        tags=partition_range_tags(*REAL_DAYS),
    )
    assert result.success
    return real_home, result


def read_table(home: Path, table: str) -> pd.DataFrame:
    files = sorted((home / "lake" / "features" / table).glob("*.parquet"))
    frames = [pq.read_table(f).to_pandas().assign(**{ff.DAY_COLUMN: f.stem}) for f in files]
    return utc(pd.concat(frames, ignore_index=True))


def test_asset_writes_one_file_per_table_per_day_with_metadata(materialized):
    home, result = materialized
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    features = home / "lake" / "features"
    assert sorted(p.name for p in features.iterdir()) == sorted(ff.ALL_TABLES)  # no staging left
    for table in ff.ALL_TABLES:
        assert sorted(p.stem for p in (features / table).glob("*.parquet")) == days
        schema = pq.read_schema(features / table / "2013-01-02.parquet")
        assert tuple(schema.names) == ff.table_columns(table)
        assert schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    schedule = pq.read_schema(features / "flight_schedule" / "2013-01-01.parquet")
    assert schedule.field("origin_hour_departures").type == pa.int32()
    assert schedule.field("distance").type == pa.float64()
    assert (
        pq.read_schema(features / "delay_stats" / "2013-01-01.parquet").field("flights_7d").type == pa.int32()
    )

    events = [e.materialization for e in result.get_asset_materialization_events()]
    assert {e.asset_key for e in events} == {dg.AssetKey(["features", "flight_features"])}
    by_day = {e.partition: {k: v.value for k, v in e.metadata.items()} for e in events}
    assert sorted(by_day) == days  # one event per day of the ranged run, each with its own counts
    stats = read_table(home, "delay_stats")
    for day, flights in zip(days, (842, 943, 914), strict=True):
        metadata = by_day[day]
        assert metadata["rows/flight_schedule"] == metadata["dagster/row_count"] == flights
        assert metadata["rows/delay_stats"] == (stats[ff.DAY_COLUMN] == day).sum()
        assert metadata["window"].startswith("2013-01-01..2013-01-03")  # range-wide
        assert "null_rate/delay_stats/late_rate_1d" in metadata and "|" in metadata["preview"]
    assert stats.groupby([ff.DAY_COLUMN, "entity_type", "entity_id"]).size().eq(24).all()
    # On 2013-01-01 nothing has landed before local midnight (the data starts that day).
    first = stats[stats["event_timestamp"] == pd.Timestamp("2013-01-01 05:00", tz="UTC")]
    assert (first["flights_28d"] == 0).all()


def test_spark_and_duckdb_give_the_same_tables(materialized):
    from mlops_assets.features.inputs import read_warehouse_inputs

    home, _ = materialized
    first, last = (dt.date.fromisoformat(d) for d in REAL_DAYS)
    flights, weather = read_warehouse_inputs(home / "warehouse.duckdb", first, last)
    expected = duckdb_tables(flights, weather, first, last)
    keys = {
        "flight_schedule": ["flight_id"],
        "weather_hourly": ["origin", "event_timestamp"],
        "delay_stats": ["entity_type", "entity_id", "event_timestamp"],
    }
    for table in ff.ALL_TABLES:
        key = keys.get(table, [table.removeprefix("delay_stats_"), "event_timestamp"])
        spark_side = read_table(home, table).sort_values(key).reset_index(drop=True)
        assert set(ff.table_columns(table)) <= set(spark_side.columns), table
        duck_side = expected[table].sort_values(key).reset_index(drop=True)[list(spark_side.columns)]
        assert len(spark_side) > 0 and len(spark_side) == len(duck_side), table
        for column in spark_side.columns:
            a, b = spark_side[column], duck_side[column]
            if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
                np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-9, equal_nan=True)
            else:
                assert a.astype(str).tolist() == b.astype(str).tolist(), (table, column)
    # The weather changes are real values on real days (not a column of nulls that trivially agrees).
    weather = read_table(home, "weather_hourly")
    for name in (*ff.WEATHER_CHANGES, "wind_dir"):
        column = weather[f"{name}_change_3h" if name != "wind_dir" else name]
        # Visibility stayed at 10 miles most of these three days: its change is mostly 0, not missing.
        assert column.notna().mean() > 0.9 and column.nunique() > (1 if name == "visib" else 5), name


def test_definitions_wire_the_spark_resource(monkeypatch):
    from mlops_assets.defs.features.definitions import build_definitions
    from mlops_assets.lib.calendar import daily_partitions
    from mlops_assets.lib.settings import load_settings

    monkeypatch.setenv("MLOPS_SPARK_REMOTE", "sc://spark-connect:15002")
    from mlops_assets.resources.profiles import build_resources
    from mlops_assets.resources.warehouse import DuckDBWarehouse

    settings = load_settings({"MLOPS_HOME": os.getcwd()})
    # The stage's assets and the profile's resources, as in mlops_assets/definitions.py.
    shared = dg.Definitions(resources=build_resources(settings))
    warehouse = shared.resources["warehouse"]
    assert isinstance(warehouse, DuckDBWarehouse) and warehouse.path.endswith("warehouse.duckdb")
    defs = dg.Definitions.merge(build_definitions(settings), shared)
    with dg.build_resources({"spark": defs.resources["spark"]}) as built:  # EnvVar read at run time
        assert built.spark.remote == "sc://spark-connect:15002" and built.spark.is_remote
    assert isinstance(defs.resources["spark"], SparkResource)
    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey(["features", "flight_features"]))
    assert node.group_name == "features" and node.owners == ["team:ml-platform"]
    assert set(node.kinds) == {"spark", "parquet"} and node.description
    assert node.partitions_def == daily_partitions()
    assert node.backfill_policy == dg.BackfillPolicy.single_run()
    assert node.parent_keys == {dg.AssetKey(["fct_flights"]), dg.AssetKey(["stg_weather"])}
    # The lookback is a dependency (tests/test_lookback.py: what automation does with it).
    mapping = graph.get_partition_mapping(node.key, dg.AssetKey(["fct_flights"]))
    assert mapping == dg.TimeWindowPartitionMapping(-ff.LOOKBACK_DAYS, 0, True)  # clipped at Jan 1
    assert node.automation_condition.get_label() == "on new data, upstream checks passed"


# ---------------------------------------------------------------------------------------------------
# Leakage on the real window: cut the real inputs at a flight's prediction time, recompute, join again.


def _inputs_known_at(flights: pa.Table, weather: pa.Table, t: pd.Timestamp) -> tuple[pa.Table, pa.Table]:
    """What existed at `t`: schedules published (24 h ahead), outcomes of flights that had arrived,
    weather hours that were complete. Everything else is deleted."""
    f = flights.to_pandas()
    f = f[pd.to_datetime(f["sched_dep_utc"], utc=True) - DAY <= t].copy()
    not_yet = ~(pd.to_datetime(f["arrived_at_utc"], utc=True) <= t)
    f.loc[not_yet, ["arrived_at_utc", "arr_delay"]] = None
    w = weather.to_pandas()
    w = w[pd.to_datetime(w["available_at_utc"], utc=True) <= t]
    return (
        pa.Table.from_pandas(f, schema=flights.schema, preserve_index=False),
        pa.Table.from_pandas(w, schema=weather.schema, preserve_index=False),
    )


def _write_feature_lake(tables: dict[str, pd.DataFrame], home: Path) -> None:
    """DuckDB's tables in the asset's layout: <home>/lake/features/<table>/<day>.parquet, timestamps in
    microseconds as Spark writes them (one folder of mixed units breaks Dask's divisions)."""
    for table, frame in tables.items():
        folder = home / "lake" / "features" / table
        folder.mkdir(parents=True, exist_ok=True)
        for day, rows in frame.groupby(ff.DAY_COLUMN):
            rows.drop(columns=[ff.DAY_COLUMN]).to_parquet(
                folder / f"{day}.parquet",
                index=False,
                coerce_timestamps="us",
                allow_truncated_timestamps=True,
            )


def _joined(home: Path, entities: pd.DataFrame) -> pd.DataFrame:
    import uuid

    from mlops_assets.resources.feature_store import FeastResource

    feast = FeastResource(profile="local", home=str(home), project=f"leak_{uuid.uuid4().hex[:8]}")
    feast.apply()
    frame = feast.historical_features(entities, "flight_delay_v2")
    return frame.set_index("flight_id")[sorted(c for c in frame.columns if "__" in c)].astype("float64")


def test_no_feature_changes_when_the_real_inputs_are_cut_at_prediction_time(materialized, tmp_path):
    from mlops_assets.features.inputs import read_warehouse_inputs
    from mlops_assets.features.training_set import entity_frame

    home, _ = materialized
    first, last = (dt.date.fromisoformat(d) for d in REAL_DAYS)
    flights, weather = read_warehouse_inputs(home / "warehouse.duckdb", first, last)
    entities = entity_frame(home / "warehouse.duckdb", REAL_DAYS[1], REAL_DAYS[1]).drop(columns="flight_date")
    # Early, midday and evening flights of the last day: different weather hours and delay snapshots.
    sample = entities.iloc[[0, len(entities) // 3, len(entities) // 2, len(entities) - 1]]
    full = _joined(home, sample)  # the Spark asset's files, from the complete inputs
    assert full.notna().mean().mean() > 0.8  # real values, not an all-null comparison

    for row in sample.itertuples():
        t = pd.Timestamp(row.event_timestamp)
        cut_home = tmp_path / f"cut_{row.Index}"
        known = duckdb_tables(*_inputs_known_at(flights, weather, t), first, last)
        _write_feature_lake(known, cut_home)
        again = _joined(cut_home, sample[sample.flight_id == row.flight_id])
        pd.testing.assert_series_equal(
            again.loc[row.flight_id], full.loc[row.flight_id], check_names=False, rtol=1e-9
        )

    # The comparison can fail: cutting three hours earlier hides outcomes and weather the flight may use.
    row = sample.iloc[-1]
    early_home = tmp_path / "cut_early"
    cut = pd.Timestamp(row.event_timestamp) - pd.Timedelta(hours=3)
    _write_feature_lake(duckdb_tables(*_inputs_known_at(flights, weather, cut), first, last), early_home)
    earlier = _joined(early_home, sample[sample.flight_id == row.flight_id]).loc[row.flight_id]
    assert not np.allclose(earlier.to_numpy(), full.loc[row.flight_id].to_numpy(), equal_nan=True)
