"""Feast part of the features stage, on synthetic feature files in the exact layout of
features/flight_features (`<lake>/features/<table>/<YYYY-MM-DD>.parquet`).

1. point-in-time correctness: later snapshots, future weather and stale rows are not used;
2. leakage: removing every feature row stamped after a flight's prediction time changes nothing for it;
3. online/offline consistency, with SQLite and with the real Redis at 127.0.0.1:6379;
4. the three assets materialize in-process and write their files and metadata.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_assets.resources.feature_store import FeastResource
from tests.services import require_service

UTC = dt.UTC
DAYS = [dt.date(2013, 1, 1) + dt.timedelta(days=n) for n in range(4)]
CARRIERS, ORIGINS, DESTS = ["AA", "UA", "B6"], ["EWR", "JFK", "LGA"], ["LAX", "ORD", "BOS"]
DELAY_STATS = [f"{m}_{w}" for m in ("flights", "late_rate", "mean_arr_delay") for w in ("1d", "7d", "28d")]
WEATHER_V1 = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib",
              "precip_3h", "wind_speed_3h", "visib_min_3h", "pressure_change_3h"]  # fmt: skip
WEATHER_V2_ADDED = ["wind_dir", "temp_change_3h", "dewp_change_3h", "humid_change_3h",
                    "wind_speed_change_3h", "visib_change_3h"]  # fmt: skip
WEATHER = [*WEATHER_V1, *WEATHER_V2_ADDED]
SERVICE, SERVICE_V1 = "flight_delay_v2", "flight_delay_v1"
# Features per service: schedule 8, four delay views of 9, weather 12 (v1) or 18 (v2).
SERVICE_FEATURES = {SERVICE_V1: 8 + 4 * 9 + 12, SERVICE: 8 + 4 * 9 + 18}
TS = pa.timestamp("us", tz="UTC")
# A probe flight for the hand-made point-in-time cases (on DAYS[2]).
PROBE_DEP = dt.datetime(2013, 1, 3, 17, 20, tzinfo=UTC)
PROBE_T = PROBE_DEP - dt.timedelta(hours=2)  # 15:20 UTC
STALE_CARRIER = "ZZ"  # one snapshot, 5 h before the probe of its own flight: older than the 2 h TTL


def _utc_hours(day: dt.date) -> list[dt.datetime]:
    from zoneinfo import ZoneInfo

    start = dt.datetime.combine(day, dt.time(), ZoneInfo("America/New_York")).astimezone(UTC)
    return [start + dt.timedelta(hours=h) for h in range(24)]


def _write(root: Path, table: str, day: dt.date, frame: pd.DataFrame, schema: pa.Schema) -> None:
    folder = root / "features" / table
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(frame, schema=schema, preserve_index=False), folder / f"{day}.parquet"
    )


def schemas() -> dict[str, pa.Schema]:
    f64, i64, s = pa.float64(), pa.int64(), pa.string()
    schedule = pa.schema(
        [("flight_id", s), ("event_timestamp", TS), ("origin", s), ("dest", s), ("carrier", s), ("route", s),
         ("sched_dep_hour_local", i64), ("day_of_week", i64), ("month", i64), ("distance", f64),
         ("plane_age_years", f64), ("plane_seats", f64), ("origin_hour_departures", i64),
         ("origin_day_departures", i64)]
    )  # fmt: skip
    out = {"flight_schedule": schedule}
    for e in ("carrier", "origin", "dest", "route"):
        out[f"delay_stats_{e}"] = pa.schema(
            [(e, s), ("event_timestamp", TS)]
            + [(c, i64 if c.startswith("flights") else f64) for c in DELAY_STATS]
        )
    out["weather_hourly"] = pa.schema([("origin", s), ("event_timestamp", TS)] + [(c, f64) for c in WEATHER])
    return out


def write_synthetic_lake(lake: Path, seed: int = 7) -> pd.DataFrame:
    """Four local days of feature files; returns the flights (entity frame with prediction times)."""
    rng = np.random.default_rng(seed)
    sch = schemas()
    flights = []
    for day in DAYS:
        rows = []
        for hour in _utc_hours(day)[6:22]:
            for _ in range(3):
                carrier, origin, dest = rng.choice(CARRIERS), rng.choice(ORIGINS), rng.choice(DESTS)
                dep = hour + dt.timedelta(minutes=int(rng.integers(0, 12)) * 5)
                rows.append((carrier, origin, dest, dep))
        if day == PROBE_DEP.date():
            rows.append(("AA", "JFK", "LAX", PROBE_DEP))
            rows.append((STALE_CARRIER, "JFK", "LAX", PROBE_DEP + dt.timedelta(minutes=5)))
        frame = pd.DataFrame(rows, columns=["carrier", "origin", "dest", "sched_dep_utc"])
        frame["flight_id"] = [
            f"{r.carrier}-{i}-{r.origin}-{r.sched_dep_utc:%Y%m%dT%H%MZ}"
            for i, r in enumerate(frame.itertuples())
        ]
        frame = frame.drop_duplicates("flight_id")
        frame["route"] = frame["origin"] + "-" + frame["dest"]
        schedule = frame.assign(
            event_timestamp=frame["sched_dep_utc"] - pd.Timedelta(hours=24),
            sched_dep_hour_local=(frame["sched_dep_utc"].dt.hour - 5) % 24,
            day_of_week=day.isoweekday(),
            month=day.month,
            distance=rng.uniform(180, 2500, len(frame)).round(0),
            plane_age_years=np.where(rng.random(len(frame)) < 0.2, np.nan, rng.uniform(1, 25, len(frame))),
            plane_seats=rng.choice([50.0, 150.0, 200.0], len(frame)),
            origin_hour_departures=rng.integers(1, 40, len(frame)),
            origin_day_departures=rng.integers(100, 400, len(frame)),
        )
        _write(lake, "flight_schedule", day, schedule[sch["flight_schedule"].names], sch["flight_schedule"])
        flights.append(frame)
        hours = _utc_hours(day)
        for e, keys in (("carrier", CARRIERS), ("origin", ORIGINS), ("dest", DESTS),
                        ("route", sorted({f"{o}-{d}" for o in ORIGINS for d in DESTS}))):  # fmt: skip
            snap = pd.DataFrame([(k, h) for k in keys for h in hours], columns=[e, "event_timestamp"])
            for c in DELAY_STATS:
                snap[c] = (
                    rng.integers(0, 500, len(snap)) if c.startswith("flights") else rng.random(len(snap))
                )
            if e == "carrier" and day == PROBE_DEP.date():
                # Probe: snapshot at/before the prediction time says 0.111, the one after says 0.999.
                at = (snap.carrier == "AA") & (snap.event_timestamp == PROBE_T.replace(minute=0))
                after = (snap.carrier == "AA") & (
                    snap.event_timestamp == PROBE_T.replace(minute=0) + pd.Timedelta(hours=1)
                )
                snap.loc[at, "late_rate_1d"], snap.loc[after, "late_rate_1d"] = 0.111, 0.999
                stale = {"carrier": STALE_CARRIER, "event_timestamp": PROBE_T - pd.Timedelta(hours=5)}
                snap = pd.concat([snap, pd.DataFrame([{**stale, **{c: 1 for c in DELAY_STATS}}])])
            _write(lake, f"delay_stats_{e}", day, snap, sch[f"delay_stats_{e}"])
        weather = pd.DataFrame(
            [(o, h + dt.timedelta(hours=1)) for o in ORIGINS for h in hours],
            columns=["origin", "event_timestamp"],
        )
        for c in WEATHER:
            weather[c] = rng.normal(10, 5, len(weather))
        if day == PROBE_DEP.date():
            # The hour observed 14:00-15:00 is complete at 15:00 (used); the next one at 16:00 (not used).
            jfk = weather.origin == "JFK"
            weather.loc[jfk & (weather.event_timestamp == PROBE_T.replace(minute=0)), "temp"] = -5.0
            weather.loc[
                jfk & (weather.event_timestamp == PROBE_T.replace(minute=0) + pd.Timedelta(hours=1)), "temp"
            ] = 99.0
        _write(lake, "weather_hourly", day, weather, sch["weather_hourly"])
    out = pd.concat(flights, ignore_index=True)
    out["event_timestamp"] = out["sched_dep_utc"] - pd.Timedelta(hours=2)
    return out[["flight_id", "carrier", "origin", "dest", "route", "event_timestamp"]]


def _store(home: Path, **kwargs) -> FeastResource:
    project = kwargs.pop("project", f"t_{uuid.uuid4().hex[:10]}")
    return FeastResource(profile="local", home=str(home), project=project, **kwargs)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    home = tmp_path_factory.mktemp("feast_home")
    entities = write_synthetic_lake(home / "lake")
    feast = _store(home)
    feast.apply()
    return home, feast, entities


def expected_pit(lake: Path, entities: pd.DataFrame, service: str = SERVICE) -> pd.DataFrame:
    """An independent point-in-time join (pandas merge_asof, backward, tolerance = TTL) of the
    service's features: v1 reads the weather view without the features v2 added."""
    views = {
        "flight_schedule": ("flight_id", pd.Timedelta(days=2)),
        **{f"delay_stats_{e}": (e, pd.Timedelta(hours=2)) for e in ("carrier", "origin", "dest", "route")},
        "weather_hourly": ("origin", pd.Timedelta(hours=3)),
    }
    out = entities.sort_values("event_timestamp").reset_index(drop=True)
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    for view, (key, ttl) in views.items():
        feats = pd.read_parquet(lake / "features" / view)
        feats["event_timestamp"] = feats["event_timestamp"].astype("datetime64[us, UTC]")
        cols = [
            c
            for c in feats.columns
            if c not in (key, "event_timestamp", "origin", "dest", "carrier", "route")
            and not (service == SERVICE_V1 and c in WEATHER_V2_ADDED)
        ]
        right = feats[[key, "event_timestamp", *cols]].rename(columns={c: f"{view}__{c}" for c in cols})
        right = right.sort_values("event_timestamp")
        out = pd.merge_asof(out, right, on="event_timestamp", by=key, tolerance=ttl, direction="backward")
    return out


def _feature_columns(frame: pd.DataFrame) -> list[str]:
    return sorted(c for c in frame.columns if "__" in c)


def _assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    actual = actual.sort_values("flight_id").reset_index(drop=True)
    expected = expected.sort_values("flight_id").reset_index(drop=True)
    assert list(actual.flight_id) == list(expected.flight_id)
    cols = _feature_columns(expected)
    assert _feature_columns(actual) == cols
    for c in cols:
        a, e = actual[c].astype("float64"), expected[c].astype("float64")
        assert np.allclose(a, e, equal_nan=True), (
            c,
            actual.loc[~np.isclose(a, e, equal_nan=True), ["flight_id", c]],
        )


@pytest.mark.parametrize("service", [SERVICE_V1, SERVICE])
def test_point_in_time_join(synthetic, service):
    """Both service versions resolve from the same views: v1 exactly its 56 features (a model trained
    on v1 still gets what it learned from), v2 those plus the new weather features."""
    home, feast, entities = synthetic
    frame = feast.historical_features(entities, service)
    assert len(frame) == len(entities)
    assert len(_feature_columns(frame)) == SERVICE_FEATURES[service]
    assert ("weather_hourly__temp_change_3h" in frame) == (service == SERVICE)
    _assert_frames_match(frame, expected_pit(home / "lake", entities, service))

    probe = frame[(frame.carrier == "AA") & (pd.to_datetime(frame.event_timestamp, utc=True) == PROBE_T)
                  & (frame.route == "JFK-LAX")].iloc[0]  # fmt: skip
    assert probe["delay_stats_carrier__late_rate_1d"] == pytest.approx(0.111)  # not the later 0.999
    assert probe["weather_hourly__temp"] == pytest.approx(-5.0)  # not the hour complete after PROBE_T
    stale = frame[frame.carrier == STALE_CARRIER].iloc[0]
    assert pd.isna(stale["delay_stats_carrier__late_rate_1d"])  # 5 h old > 2 h TTL
    assert pd.notna(stale["weather_hourly__temp"])
    # Every flight of the first day has no schedule row from the day before... except its own (24 h ahead).
    assert frame["flight_schedule__distance"].notna().all()


def test_point_in_time_join_equals_feasts_file_store(synthetic):
    """The platform's offline store (DuckDB ASOF) against Feast's own `file` (Dask) store on the same
    registry and files, one view at a time (the Dask store drops an entity row whose candidates are all
    older than the TTL, which per view means nulls): every cell equal."""
    from feast import FeatureStore, RepoConfig

    _, feast, entities = synthetic
    config = feast.rendered_config()
    config["offline_store"] = {"type": "file"}
    dask_config = RepoConfig(**config)
    dask_config.repo_path = Path(feast.repo_dir)
    dask = FeatureStore(config=dask_config)
    expected = entities.copy()
    for projection in dask.get_feature_service(SERVICE).feature_view_projections:
        keys = list(dask.get_feature_view(projection.name).join_keys)
        requests = entities[[*keys, "event_timestamp"]].drop_duplicates()
        refs = [f"{projection.name}:{f.name}" for f in projection.features]
        joined = dask.get_historical_features(
            entity_df=requests, features=refs, full_feature_names=True
        ).to_df()
        joined["event_timestamp"] = pd.to_datetime(joined["event_timestamp"], utc=True)
        expected = expected.merge(joined, on=[*keys, "event_timestamp"], how="left", validate="many_to_one")
    got = feast.historical_features(entities, SERVICE)
    columns = _feature_columns(expected)
    assert _feature_columns(got) == columns and len(columns) == SERVICE_FEATURES[SERVICE]
    left = got.sort_values("flight_id").reset_index(drop=True)[columns].astype("float64")
    right = expected.sort_values("flight_id").reset_index(drop=True)[columns].astype("float64")
    pd.testing.assert_frame_equal(left, right, check_exact=True)


def _truncated_lake(src: Path, dst: Path, cutoff: pd.Timestamp) -> None:
    for table_dir in (src / "features").iterdir():
        for file in table_dir.glob("*.parquet"):
            table = pq.read_table(file)
            frame = table.to_pandas()
            kept = frame[pd.to_datetime(frame["event_timestamp"], utc=True) <= cutoff]
            (dst / "features" / table_dir.name).mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pandas(kept, schema=table.schema, preserve_index=False),
                           dst / "features" / table_dir.name / file.name)  # fmt: skip


def test_no_leakage_when_future_rows_are_removed(synthetic, tmp_path):
    home, feast, entities = synthetic
    full = feast.historical_features(entities, SERVICE).set_index("flight_id")
    sample = entities.sample(6, random_state=3)
    for row in sample.itertuples():
        cut_home = tmp_path / row.flight_id
        _truncated_lake(home / "lake", cut_home / "lake", pd.Timestamp(row.event_timestamp))
        cut = _store(cut_home)
        cut.apply()
        again = cut.historical_features(sample[sample.flight_id == row.flight_id], SERVICE).set_index(
            "flight_id"
        )
        cols = _feature_columns(full)
        a = full.loc[[row.flight_id], cols].astype("float64").to_numpy()
        b = again.loc[[row.flight_id], cols].astype("float64").to_numpy()
        assert np.allclose(a, b, equal_nan=True), row.flight_id


def _delete_redis_project(project: str) -> int:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


@pytest.mark.parametrize(
    ("online", "service"), [("sqlite", SERVICE_V1), ("sqlite", SERVICE), ("redis", SERVICE)]
)
def test_online_matches_offline(synthetic, online, service):
    home, _, entities = synthetic
    if online == "redis":
        require_service("redis")
    project = f"t_{online}_{uuid.uuid4().hex[:8]}"
    feast = _store(home, project=project, online_store=online)
    try:
        feast.apply()
        when = pd.Timestamp(PROBE_T)
        feast.materialize_as_of(when.to_pydatetime())
        candidates = entities[
            (entities.event_timestamp > when) & (entities.event_timestamp <= when + pd.Timedelta(hours=20))
        ]
        sample = pd.concat(
            [candidates.head(12), entities[entities.carrier == STALE_CARRIER]]
        ).drop_duplicates("flight_id")
        rows = sample.drop(columns=["event_timestamp"]).to_dict("records")
        online_values = pd.DataFrame(feast.online_features(rows, service))
        offline = feast.historical_features(sample.assign(event_timestamp=when), service)
        cols = _feature_columns(offline)
        assert len(cols) == SERVICE_FEATURES[service]
        assert sorted(c for c in online_values.columns if "__" in c) == cols
        _assert_frames_match(online_values[["flight_id", *cols]], offline[["flight_id", *cols]])
        # Flights of the day after are not known online yet at `when` (schedule stamped 24 h ahead).
        assert online_values["flight_schedule__distance"].notna().any()
    finally:
        if online == "redis":
            _delete_redis_project(project)
            import redis

            assert not list(redis.Redis(host="127.0.0.1", port=6379).scan_iter(match=b"*" + project.encode()))


def _synthetic_warehouse(home: Path, entities: pd.DataFrame) -> None:
    import duckdb

    frame = entities.assign(
        prediction_time_utc=pd.to_datetime(entities["event_timestamp"], utc=True),
        flight_date=(pd.to_datetime(entities["event_timestamp"], utc=True) + pd.Timedelta(hours=2))
        .dt.tz_convert("America/New_York")
        .dt.date,
        label_late=[None if i % 17 == 0 else i % 4 == 0 for i in range(len(entities))],
    ).drop(columns=["event_timestamp", "route"])
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create schema if not exists marts")
        con.register("frame", frame)
        con.execute("create or replace table marts.fct_flights as select * from frame")


def test_assets_materialize_in_process(tmp_path):
    from mlops_assets.defs.features.feast_assets import build_feast_assets
    from mlops_assets.lib.settings import Settings
    from mlops_assets.resources.profiles import build_resources
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.warehouse import DuckDBWarehouse

    home = tmp_path / "home"
    entities = write_synthetic_lake(home / "lake")
    _synthetic_warehouse(home, entities)
    defs = dg.Definitions(
        assets=build_feast_assets(), resources=build_resources(Settings(profile="local", home=home))
    )
    assert isinstance(defs.resources["feast"], FeastResource)
    resources = {
        "feast": _store(home),
        "lake": LocalObjectStore(root=str(home / "lake")),
        "warehouse": DuckDBWarehouse(path=str(home / "warehouse.duckdb")),
    }
    assets = build_feast_assets()

    applied = dg.materialize(assets, selection=["features/feature_views"], resources=resources)
    meta = applied.get_asset_materialization_events()[0].materialization.metadata
    assert meta["features"].value == SERVICE_FEATURES[SERVICE]
    assert meta["feature_service"].value == f"{SERVICE_V1}, {SERVICE}"
    assert meta["entities"].value == ["carrier", "dest", "flight", "origin", "route"]

    online = dg.materialize(
        assets, selection=["features/online_store"], resources=resources, partition_key="2013-01-03"
    )
    meta = online.get_asset_materialization_events()[0].materialization.metadata
    assert meta["entities_by_view"].value["delay_stats_carrier"] == 4  # AA, UA, B6 and the stale ZZ
    assert meta["entities_by_view"].value["flight_schedule"] > 0
    row = entities[entities.carrier == "AA"].iloc[-1]
    values = resources["feast"].online_features([row.drop("event_timestamp").to_dict()], SERVICE)
    assert values["weather_hourly__temp"][0] is not None

    config = {
        "ops": {"features__training_set": {"config": {"start_date": "2013-01-01", "end_date": "2013-01-04"}}}
    }
    trained = dg.materialize(
        assets, selection=["features/training_set"], resources=resources, run_config=config
    )
    meta = trained.get_asset_materialization_events()[0].materialization.metadata
    path = home / "lake" / meta["training_set/key"].value  # content-addressed: window and hash
    frame = pd.read_parquet(path)
    labelled = entities[[i % 17 != 0 for i in range(len(entities))]]
    assert meta["dagster/row_count"].value == len(frame) == len(labelled)
    assert meta["feature_count"].value == SERVICE_FEATURES[SERVICE]
    assert len(meta["content_sha256"].value) == 64
    assert meta["training_set/feature_service"].value == SERVICE
    assert 0 < meta["label_rate"].value < 1
    # Rebuilding the same window gives the same content hash.
    again = dg.materialize(
        assets, selection=["features/training_set"], resources=resources, run_config=config
    )
    assert again.get_asset_materialization_events()[0].materialization.metadata["content_sha256"].value == (
        meta["content_sha256"].value
    )
    shutil.rmtree(home / "feast")
