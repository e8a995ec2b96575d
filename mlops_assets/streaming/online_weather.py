"""Weather features that follow the stream: each hour's `weather_hourly` row pushed to the online store as
soon as its observation is consumed (an hour's observation is known at H+1, so within the hour).

The row is computed by the batch's own SQL (`features/duckdb_features.weather_hourly_sql`, tested equal
to the Spark job) over the streamed observations cast as dbt's `stg_weather` casts them, so the pushed
values are the batch snapshot's values, not a second implementation of them. It needs the three hours
before H (3-hour sums and changes), which the follower keeps per origin.

The SQLite online store overwrites a row whatever its timestamp: an hour older than the newest one pushed
for its origin (a late or redelivered event) is therefore never pushed; a duplicate is dropped before it
gets here (the consumer's dedupe by id).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

VIEW = "weather_hourly"
HISTORY = dt.timedelta(hours=4)  # H-3 .. H: what a row of hour H reads
STAGED_COLUMNS = {  # stg_weather column: raw column (dbt/models/staging/stg_weather.sql)
    "temp_f": "temp", "dewpoint_f": "dewp", "humidity_pct": "humid", "wind_dir_deg": "wind_dir",
    "wind_speed_mph": "wind_speed", "wind_gust_mph": "wind_gust", "precip_in": "precip",
    "pressure_mb": "pressure", "visibility_mi": "visib",
}  # fmt: skip


def _hour(row: dict[str, str]) -> dt.datetime:
    return dt.datetime.fromisoformat(row["time_hour"].replace("Z", "+00:00")).astimezone(dt.UTC)


def staged(rows: list[dict[str, str]]):
    """Raw weather rows (upstream text) -> a frame with stg_weather's columns and types."""
    import pandas as pd

    def number(text: str) -> float | None:
        return None if text in ("", "NA") else float(text)

    frame = pd.DataFrame(
        {
            "origin": [r["origin"] for r in rows],
            "weather_date": [dt.date(int(r["year"]), int(r["month"]), int(r["day"])) for r in rows],
            "local_hour": [int(r["hour"]) for r in rows],
            "observed_hour_utc": pd.to_datetime([_hour(r) for r in rows], utc=True),
            **{name: [number(r[raw]) for r in rows] for name, raw in STAGED_COLUMNS.items()},
        }
    )
    frame["available_at_utc"] = frame["observed_hour_utc"] + pd.Timedelta(hours=1)
    return frame.astype({name: "float64" for name in STAGED_COLUMNS})


def feature_rows(history: list[dict[str, str]], hours: list[tuple[str, dt.datetime]]):
    """The weather_hourly rows of (origin, observed hour) pairs, from the observations in `history`."""
    import duckdb

    from mlops_assets.features.duckdb_features import weather_hourly_sql
    from mlops_assets.features.flight_features import DAY_COLUMN

    frame = staged(history)
    days = sorted(set(frame["weather_date"]))
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.register("weather", frame)
        rows = con.execute(weather_hourly_sql(days[0], days[-1])).df()
    wanted = {(origin, hour + dt.timedelta(hours=1)) for origin, hour in hours}
    stamps = [ts.to_pydatetime() for ts in rows["event_timestamp"]]
    keep = [(o, t) in wanted for o, t in zip(rows["origin"], stamps, strict=True)]
    return rows[keep].drop(columns=[DAY_COLUMN]).reset_index(drop=True)


class WeatherFollower:
    """Keeps the last hours of observations per origin and pushes each new hour's features."""

    def __init__(self, feast: Any) -> None:
        self.feast = feast
        self.recent: dict[str, dict[dt.datetime, dict[str, str]]] = {}
        self.newest: dict[str, dt.datetime] = {}
        self.pushed = 0
        self.skipped_late = 0

    def observe(self, observations: list[dict[str, str]]) -> int:
        """Take a batch's new observations; push the rows of the hours newer than any pushed yet."""
        fresh: list[tuple[str, dt.datetime]] = []
        for row in observations:
            origin, hour = row["origin"], _hour(row)
            self.recent.setdefault(origin, {})[hour] = row
            if origin in self.newest and hour <= self.newest[origin]:
                self.skipped_late += 1  # the online row holds a newer hour: never overwrite it
                continue
            fresh.append((origin, hour))
        if not fresh:
            return 0
        history = [row for hours in self.recent.values() for row in hours.values()]
        rows = feature_rows(history, fresh)
        if len(rows):
            self.feast.get_store().write_to_online_store(VIEW, rows)
        self.remember([])
        for origin, hour in fresh:
            self.newest[origin] = max(hour, self.newest.get(origin, hour))
        self.pushed += len(rows)
        return len(rows)

    def remember(self, observations: list[dict[str, str]]) -> None:
        """Take observations without pushing (a restarted consumer's recovery), then keep per origin only
        the hours the next rows read."""
        for row in observations:
            self.recent.setdefault(row["origin"], {})[_hour(row)] = row
        for origin, hours in self.recent.items():
            newest = max(hours)
            self.recent[origin] = {h: r for h, r in hours.items() if h > newest - HISTORY}
