"""Weather features that follow the stream (mlops_assets/streaming/online_weather.py): what the online store
holds after each streamed hour equals the batch snapshot of that hour, and a late or repeated observation
does not change it."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest

from tests.test_streaming import DAY, delivered_files

DBT_STAGING = Path(__file__).resolve().parents[1] / "dbt" / "models" / "staging" / "stg_weather.sql"


def batch_snapshot(csv: Path, day: dt.date):
    """weather_hourly of the delivered day the batch way: dbt's own stg_weather SQL over the file, then the
    feature SQL."""
    import duckdb

    from mlops_assets.features.duckdb_features import weather_hourly_sql

    model = DBT_STAGING.read_text().split("}}", 1)[1]  # past the config block
    source = f"read_csv('{csv}', all_varchar = true, nullstr = 'NA')"
    staging = model.replace("{{ source('raw', 'weather') }}", source)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"create view weather as {staging}")
        return con.execute(weather_hourly_sql(day, day)).df()


def online_rows(feast, features: list[str]) -> dict[str, dict]:
    response = feast.get_store().get_online_features(
        features=[f"weather_hourly:{f}" for f in features],
        entity_rows=[{"origin": o} for o in ("EWR", "JFK", "LGA")],
    )
    table = response.to_dict()
    return {origin: {f: table[f][i] for f in features} for i, origin in enumerate(table["origin"])}


def same(a, b) -> bool:
    missing = (a is None or (isinstance(a, float) and math.isnan(a)), b is None or math.isnan(b))
    return all(missing) if any(missing) else math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.slow
def test_weather_online_follows_the_stream_and_equals_the_batch_snapshot(tmp_path):
    from feature_repo.flight_delay_repo import WEATHER_FEATURES
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.streaming.events import window_events
    from mlops_assets.streaming.online_weather import WeatherFollower

    feast = FeastResource(profile="local", home=str(tmp_path / "home"))
    feast.apply()
    delivered = delivered_files(tmp_path, DAY, DAY)
    csv = tmp_path / "weather.csv"
    csv.write_bytes(delivered[f"weather/{DAY}.csv"])
    batch = batch_snapshot(csv, DAY)
    features = list(WEATHER_FEATURES)

    follower = WeatherFollower(feast)
    observations = [e for e in window_events(DAY, DAY) if e.kind == "weather.observed"]
    by_instant: dict[dt.datetime, list] = {}
    for event in observations:
        by_instant.setdefault(event.time, []).append(event.fields)
    compared = 0
    for instant, rows in sorted(by_instant.items()):
        follower.observe(rows)
        online = online_rows(feast, features)
        snapshot = batch[batch["event_timestamp"] == instant]
        for _, expected in snapshot.iterrows():
            got = online[expected["origin"]]
            assert all(same(got[f], expected[f]) for f in features), (instant, expected["origin"])
            compared += 1
    assert compared == len(batch) > 60  # every hour of the day, each checked as it went online

    # A late observation (an older hour, corrected) and a repeated one leave the online rows as they are.
    before = online_rows(feast, features)
    older = {**observations[-10].fields, "temp": "99.5"}
    assert follower.observe([older, observations[-1].fields]) == 0
    assert follower.skipped_late == 2
    assert online_rows(feast, features) == before


def online_delay_rows(feast, entity: str, ids: list[str]) -> dict[str, dict]:
    from mlops_assets.features.flight_features import STAT_COLUMNS

    response = feast.get_store().get_online_features(
        features=[f"delay_stats_{entity}:{c}" for c in STAT_COLUMNS], entity_rows=[{entity: i} for i in ids]
    )
    table = response.to_dict()
    return {key: {c: table[c][n] for c in STAT_COLUMNS} for n, key in enumerate(table[entity])}


def batch_delay_snapshots(warehouse: Path, first: dt.date, last: dt.date):
    """delay_stats of the days the batch way: the warehouse's fct_flights, then the feature SQL."""
    import duckdb

    from mlops_assets.features.duckdb_features import delay_stats_sql
    from mlops_assets.features.inputs import read_warehouse_inputs

    flights, _ = read_warehouse_inputs(warehouse, first, last)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.register("flights", flights)
        return con.execute(delay_stats_sql(first, last)).df()


def assert_online_equals_batch(feast, batch, hour: dt.datetime) -> int:
    """Every entity of the batch snapshot of `hour`, read from the online store: the same figures."""
    from mlops_assets.features.flight_features import ENTITY_TYPES, STAT_COLUMNS

    snapshot = batch[batch["event_timestamp"] == hour]
    for entity in ENTITY_TYPES:
        expected = snapshot[snapshot["entity_type"] == entity]
        online = online_delay_rows(feast, entity, list(expected["entity_id"]))
        for _, row in expected.iterrows():
            got = online[row["entity_id"]]
            wrong = [c for c in STAT_COLUMNS if not same(got[c], row[c])]
            assert not wrong, (hour, entity, row["entity_id"], {c: (got[c], row[c]) for c in wrong})
    return len(snapshot)


@pytest.mark.slow
def test_delay_statistics_online_follow_the_stream_and_equal_the_batch_snapshot(training_set_home, tmp_path):
    """Two streamed days over 19 delivered ones: after each clock tick of the second day the online store
    holds that hour's batch snapshot for every carrier, origin, destination and route (the batch computed
    from dbt's fct_flights); an arrival consumed late is in the snapshots from the next hour on, and a
    repeated one changes nothing."""
    from mlops_assets.ingestion.layout import landing_key
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.streaming.events import local_midnight, window_events
    from mlops_assets.streaming.online_delays import DelayFollower

    delivered = LocalObjectStore(root=str(training_set_home / "landing"))
    landing = LocalObjectStore(root=str(tmp_path / "landing"))
    first_streamed = dt.date(2013, 1, 20)
    kept = [landing_key("airports", None)]
    kept += [landing_key("flights", f"2013-01-{d:02d}") for d in range(1, first_streamed.day)]
    for key in kept:  # the stream's days come only from its events
        landing.write_bytes(key, delivered.read_bytes(key))
    feast = FeastResource(profile="local", home=str(tmp_path / "home"))
    feast.apply()
    last_day = dt.date(2013, 1, 21)
    batch = batch_delay_snapshots(training_set_home / "warehouse.duckdb", last_day, last_day)

    events = window_events(first_streamed, dt.date(2013, 1, 21))
    # An arrival of the second day, consumed three hours after it happened (a redelivery after a crash).
    late = next(e for e in events if e.kind == "flight.arrived" and e.time.hour == 15 and e.time.day == 21)
    due = late.time.replace(minute=0, second=0) + dt.timedelta(hours=3)
    follower = DelayFollower(feast, landing)
    compared = hours = 0
    batch_hours = set(batch["event_timestamp"])
    for event in events:
        if event is late:
            continue
        follower.take([event])
        if event.kind != "clock.tick" or event.time < local_midnight(last_day):
            continue  # the first day's hours: only taken in (the snapshots of the second day read them)
        if event.time == due:
            follower.take([late, late])  # late, and twice
        if follower.follow(event.time) == 0 or event.time not in batch_hours:
            continue  # nothing new, or an hour of 01-22 (the stream ends with the last arrivals of 01-21)
        hours += 1
        if late.time < event.time <= due - dt.timedelta(hours=1):
            # The hours the late arrival missed: the batch has it, the stream did not yet.
            with pytest.raises(AssertionError):
                assert_online_equals_batch(feast, batch, event.time)
            continue
        compared += assert_online_equals_batch(feast, batch, event.time)
    assert hours == len(batch_hours) == 24
    assert compared > 20 * 250
    assert follower.follow(due) == 0  # an hour older than the newest pushed is never pushed again


@pytest.mark.slow
def test_the_consumer_pushes_delay_statistics_online_across_a_kill_9(training_set_home, broker, tmp_path):
    """`mlops stream consume --online` on a real RabbitMQ, killed right after a durable write and
    restarted: the restarted consumer rebuilds the flights it had written from the lake (the broker
    redelivers them only as duplicates), and the online store ends on the batch snapshot of the last hour."""
    from mlops_assets.ingestion.layout import landing_key
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.streaming.events import window_events
    from mlops_assets.streaming.producer import publish_events
    from tests.test_streaming import finish, start_consumer

    home = tmp_path / "home"
    delivered = LocalObjectStore(root=str(training_set_home / "landing"))
    landing = LocalObjectStore(root=str(home / "landing"))
    for key in [landing_key("airports", None)] + [
        landing_key("flights", f"2013-01-{d:02d}") for d in range(1, 21)
    ]:
        landing.write_bytes(key, delivered.read_bytes(key))
    feast = FeastResource(profile="local", home=str(home))
    feast.apply()
    last_hour = dt.datetime(2013, 1, 21, 19, tzinfo=dt.UTC)  # 14:00 in New York
    events = [
        e
        for e in window_events(dt.date(2013, 1, 21), dt.date(2013, 1, 21))
        if e.time < last_hour + dt.timedelta(hours=1)
    ]
    publish_events(broker, events, 0)

    crashed = start_consumer(home, broker, "--online", "--batch-size", "500", "--crash-after-batches", "2")
    assert finish(crashed) == -9
    restarted = start_consumer(home, broker, "--online", "--exit-when-idle", "2")
    assert finish(restarted, timeout=240) == 0
    log = max(home.glob("consumer-*.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert "delay statistics row(s)" in log, log

    batch = batch_delay_snapshots(
        training_set_home / "warehouse.duckdb", dt.date(2013, 1, 21), dt.date(2013, 1, 21)
    )
    assert assert_online_equals_batch(feast, batch, last_hour) > 250


def test_an_unreadable_landed_file_is_left_out_not_fatal(tmp_path):
    """A landed flights file the follower cannot read (the raw assets quarantine it, so the batch leaves
    the day out too) is logged once and left out; the hour's statistics are still pushed."""
    from mlops_assets.ingestion.layout import landing_key
    from mlops_assets.replay import replay
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.streaming.events import window_events
    from mlops_assets.streaming.online_delays import DelayFollower

    landing = LocalObjectStore(root=str(tmp_path / "landing"))
    replay(landing, dt.date(2013, 1, 19), dt.date(2013, 1, 19))
    landing.write_bytes(landing_key("flights", "2013-01-18"), b"not,the,columns\n1,2,3\n")
    feast = FeastResource(profile="local", home=str(tmp_path / "home"))
    feast.apply()
    logged: list[str] = []
    follower = DelayFollower(feast, landing, logged.append)
    noon = dt.datetime(2013, 1, 20, 17, tzinfo=dt.UTC)
    follower.take([e for e in window_events(dt.date(2013, 1, 20), dt.date(2013, 1, 20)) if e.time < noon])
    assert follower.follow(noon) > 0
    assert follower.follow(noon + dt.timedelta(hours=1)) > 0
    assert sum("2013-01-18" in line and "unreadable" in line for line in logged) == 1  # once, not hourly
    online = online_delay_rows(feast, "origin", ["EWR"])["EWR"]
    assert online["flights_1d"] > 0
