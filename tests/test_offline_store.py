"""The DuckDB offline store gives what Feast's own `file` (Dask) store gives, cell for cell.

Two Feast stores share one registry and one set of Parquet files; only `offline_store.type` differs. On
small synthetic sources every point-in-time rule is exercised (the TTL's inclusive bounds, a row exactly at
the entity's time, a future row, ties broken by the created timestamp, a key with no row, duplicate entity
rows, two views with a shared feature name); `materialize`'s read is compared too. The same comparison on
the real feature files is in tests/test_feast_store.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.features.offline_store import STORE_TYPE

T0 = pd.Timestamp("2013-03-01 12:00", tz="UTC")
TTL = dt.timedelta(hours=2)


def _store(tmp_path: Path, offline: str):
    from feast import FeatureStore, RepoConfig

    config = RepoConfig(
        project="pit",
        provider="local",
        registry=str(tmp_path / "registry.db"),
        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
        offline_store={"type": offline},
        entity_key_serialization_version=3,
    )
    config.repo_path = tmp_path
    return FeatureStore(config=config)


def _write_day_files(folder: Path, frame: pd.DataFrame) -> None:
    """One Parquet file per UTC day of event_timestamp, as the feature asset writes them."""
    folder.mkdir(parents=True)
    for day, part in frame.groupby(frame["event_timestamp"].dt.date):
        part.to_parquet(folder / f"{day}.parquet", index=False)


@pytest.fixture
def stores(tmp_path: Path):
    """(duckdb store, dask store) over two applied views with synthetic rows."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    hour = dt.timedelta(hours=1)
    delays = pd.DataFrame(
        {
            "carrier": ["AA", "AA", "AA", "AA", "UA", "UA", "UA", "B6"],
            "event_timestamp": [
                T0 - TTL - dt.timedelta(seconds=1),  # one second too old for an entity at T0
                T0 - TTL,  # exactly the TTL: still in
                T0,  # exactly the entity's time: in
                T0 + hour,  # the future of an entity at T0
                T0 - hour,
                T0 - hour,  # same key and time: the newer created timestamp wins
                T0 - 13 * hour,  # the previous day's file
                T0 - 3 * hour,  # older than the TTL for every entity
            ],
            "created": [T0 - 5 * hour, T0 - 2 * hour, T0, T0 + hour, T0 - hour, T0, T0 - 13 * hour, T0],
            "late_rate": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
            "flights": [1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    weather = pd.DataFrame(
        {
            "origin": ["JFK", "JFK", "EWR"],
            "event_timestamp": [T0 - hour, T0 + 2 * hour, T0 - 26 * hour],
            "late_rate": [0.9, 0.95, 0.99],  # the same feature name as the delay view's
            "temp": [40.0, 41.0, 42.0],
        }
    )
    _write_day_files(tmp_path / "delays", delays)
    _write_day_files(tmp_path / "weather", weather)
    carrier = Entity(name="carrier", join_keys=["carrier"], value_type=ValueType.STRING)
    origin = Entity(name="origin", join_keys=["origin"], value_type=ValueType.STRING)
    objects = [
        carrier,
        origin,
        FeatureView(
            name="delays",
            entities=[carrier],
            ttl=TTL,
            schema=[
                Field(name="carrier", dtype=String),
                Field(name="late_rate", dtype=Float64),
                Field(name="flights", dtype=Int64),
            ],
            source=FileSource(
                name="delays_source",
                path=str(tmp_path / "delays"),
                timestamp_field="event_timestamp",
                created_timestamp_column="created",
            ),
        ),
        FeatureView(
            name="weather",
            entities=[origin],
            ttl=dt.timedelta(hours=3),
            schema=[
                Field(name="origin", dtype=String),
                Field(name="late_rate", dtype=Float64),
                Field(name="temp", dtype=Float64),
            ],
            source=FileSource(
                name="weather_source", path=str(tmp_path / "weather"), timestamp_field="event_timestamp"
            ),
        ),
    ]
    fast = _store(tmp_path, STORE_TYPE)
    fast.apply(objects)
    return fast, _store(tmp_path, "file")


def _entities() -> pd.DataFrame:
    hour = dt.timedelta(hours=1)
    return pd.DataFrame(
        {
            "carrier": ["AA", "AA", "UA", "UA", "B6", "ZZ", "AA"],
            "origin": ["JFK", "JFK", "JFK", "EWR", "JFK", "LGA", "JFK"],
            "event_timestamp": [T0, T0, T0, T0 - 12 * hour, T0, T0, T0 + 2 * hour],
        }
    )


REFS = ["delays:late_rate", "delays:flights", "weather:late_rate", "weather:temp"]


def _dask_per_view(store, entities: pd.DataFrame) -> pd.DataFrame:
    """Feast's file store, one view at a time, merged back onto the entity rows: the Dask store drops an
    entity row whose only candidates are older than the TTL, which per view just means nulls, and fails
    on a key with no row at all (its shuffle cannot sort the null timestamps), which is left out."""
    result = entities.copy()
    for view, keys in (("delays", ["carrier"]), ("weather", ["origin"])):
        source = pd.read_parquet(store.get_feature_view(view).batch_source.path)
        requests = entities[[*keys, "event_timestamp"]].drop_duplicates()
        requests = requests[requests[keys[0]].isin(source[keys[0]])]
        refs = [r for r in REFS if r.startswith(f"{view}:")]
        joined = store.get_historical_features(
            entity_df=requests, features=refs, full_feature_names=True
        ).to_df()
        joined["event_timestamp"] = pd.to_datetime(joined["event_timestamp"], utc=True)
        result = result.merge(joined, on=[*keys, "event_timestamp"], how="left", validate="many_to_one")
    return result


def test_the_point_in_time_join_equals_feasts_file_store(stores):
    fast, dask = stores
    entities = _entities()
    got = fast.get_historical_features(entity_df=entities, features=REFS, full_feature_names=True).to_df()
    expected = _dask_per_view(dask, entities)
    columns = ["delays__late_rate", "delays__flights", "weather__late_rate", "weather__temp"]
    assert list(got.columns) == [*entities.columns, *columns]
    # Among rows of one key and event timestamp the Dask store keeps whichever its (unstable) sort put
    # last; Feast's SQL stores, and this one, keep the newest created timestamp. Compared apart, below.
    same = ~(entities["carrier"].eq("UA") & entities["event_timestamp"].eq(T0))
    pd.testing.assert_frame_equal(
        got.loc[same, columns].astype("float64"),
        expected.loc[same, columns].astype("float64"),
        check_exact=True,
    )
    # The rules themselves, row by row: the row at T0 and not the future one (0, 1), the newer created
    # timestamp of a tie (2), a row of the previous day's file (3), nothing older than the TTL (4), nothing
    # for an unknown key (5), a row stamped exactly at the entity's time (6, weather).
    delays = got["delays__late_rate"].tolist()
    assert delays[:4] == [0.3, 0.3, 0.6, 0.7] and delays[6] == 0.4
    assert pd.isna(delays[4]) and pd.isna(delays[5])
    weather = got["weather__late_rate"].tolist()
    assert weather[:3] == [0.9, 0.9, 0.9] and weather[6] == 0.95 and pd.isna(weather[3])


def test_the_ttl_lower_bound_is_inclusive(stores):
    fast, dask = stores
    entities = pd.DataFrame({"carrier": ["AA"], "event_timestamp": [T0 - dt.timedelta(seconds=1)]})
    refs = ["delays:late_rate"]
    got = fast.get_historical_features(entity_df=entities, features=refs).to_df()
    expected = dask.get_historical_features(entity_df=entities, features=refs).to_df()
    # At T0 - 1 s the rows at T0 - TTL - 1 s and T0 - TTL are both in the TTL; the later one wins.
    assert got["late_rate"].tolist() == expected["late_rate"].tolist() == [0.2]


def test_materialization_reads_the_latest_row_per_entity_as_feasts_file_store(stores):
    from feast.infra.offline_stores.dask import DaskOfflineStore

    from mlops_assets.features.offline_store import DuckDBAsofOfflineStore

    fast, dask = stores
    source = fast.get_feature_view("delays").batch_source
    window = (T0 - dt.timedelta(hours=3), T0 + dt.timedelta(minutes=30))
    arguments = (["carrier"], ["late_rate", "flights"], "event_timestamp", "created", *window)
    got = DuckDBAsofOfflineStore.pull_latest_from_table_or_query(fast.config, source, *arguments).to_df()
    expected = DaskOfflineStore.pull_latest_from_table_or_query(dask.config, source, *arguments).to_df()
    order = ["carrier", "late_rate", "flights"]
    got, expected = (f[order].sort_values("carrier").reset_index(drop=True) for f in (got, expected))
    assert got["late_rate"].tolist() == [0.3, 0.8, 0.6]  # AA at T0, B6, UA's newer created of a tie
    same = got["carrier"] != "UA"  # a tie: see the point-in-time test
    pd.testing.assert_frame_equal(got[same], expected[same])


def test_an_entity_frame_without_event_timestamp_is_refused(stores):
    fast, _ = stores
    with pytest.raises(ValueError, match="event_timestamp"):
        fast.get_historical_features(entity_df=pd.DataFrame({"carrier": ["AA"]}), features=REFS[:2]).to_df()
