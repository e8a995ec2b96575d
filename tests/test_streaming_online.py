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
