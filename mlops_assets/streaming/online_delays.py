"""Delay statistics that follow the stream: at each hour H of the replayed clock, the `delay_stats_<type>`
snapshots of H (flights, late rate and mean delay over 1, 7 and 28 days per carrier, origin, destination
and route, counting the flights arrived before H) pushed to the online store, so the service at 14:00
sees the flights landed by 13:59 instead of yesterday's.

The rows are computed by the batch's own SQL (`features/duckdb_features.delay_stats_sql`, tested equal to
the Spark job) over the flights of the 29 days the snapshot reads, with each arrival instant computed as
dbt's `fct_flights.arrived_at_utc` computes it (ARRIVALS_SQL mirrors that model and its macros; a test
compares the pushed rows with the batch snapshot of the same hour). The 29 days come from two places:
days the stream has carried, from its events, and older days from the landing zone's flights files
(delivered or landed by the stream earlier), so a stream started today has the history at once.

The producer publishes in event-time order and ticks the clock every hour, so when the watermark reaches
H every arrival before H is in. An arrival consumed after its hour was pushed (a redelivery, a late
publisher) is in the next hour's snapshot; an hour is never pushed after a newer one (the SQLite online
store overwrites whatever the timestamp), and a duplicate changes nothing (flights are kept by key).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

from mlops_assets.features.flight_features import ENTITY_TYPES, LOOKBACK_DAYS
from mlops_assets.ingestion.layout import landing_key
from mlops_assets.lib.calendar import LOCAL_TZ
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.streaming.assembly import row_key_and_day
from mlops_assets.streaming.events import StreamEvent

FLIGHT_FIELDS = ("year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "origin", "dest")
FIELDS = (*FLIGHT_FIELDS, "arr_delay")

# dbt/models/marts/fct_flights.sql (arrivals CTE and arrived_at_utc) with dbt/macros/time.sql expanded:
# the schedule's local clock on the flight's date, the next day when it would land before departing.
ARRIVALS_SQL = """
with typed as (
    select
        cast(make_date(cast(year as integer), cast(month as integer), cast(day as integer)) as date)
            as flight_date,
        carrier, origin, dest,
        cast(nullif(nullif(sched_dep_time, 'NA'), '') as integer) as sched_dep_time,
        cast(nullif(nullif(sched_arr_time, 'NA'), '') as integer) as sched_arr_time,
        cast(nullif(nullif(arr_delay, 'NA'), '') as double) as arr_delay
    from raw_flights
),
local_times as (
    select typed.*, zones.tzone as dest_tzone,
        cast(flight_date as timestamp) + cast(floor(sched_dep_time / 100) as integer) * interval '1 hour'
            + cast(sched_dep_time % 100 as integer) * interval '1 minute' as sched_dep_local,
        cast(flight_date as timestamp) + cast(floor(sched_arr_time / 100) as integer) * interval '1 hour'
            + cast(sched_arr_time % 100 as integer) * interval '1 minute' as sched_arr_local_same_day
    from typed left join zones on zones.airport_code = typed.dest
),
arrivals as (
    select *,
        case
            when (sched_arr_local_same_day at time zone dest_tzone)
                < (sched_dep_local at time zone 'America/New_York')
                then sched_arr_local_same_day + interval '1 day'
            else sched_arr_local_same_day
        end as sched_arr_local
    from local_times
)
select carrier, origin, dest, flight_date, arr_delay,
    (sched_arr_local at time zone dest_tzone) + cast(arr_delay as integer) * interval '1 minute'
        as arrived_at_utc
from arrivals
"""


def destination_zones(landing_zone: ObjectStore) -> dict[str, str] | None:
    """Airport -> time zone, as fct_flights joins them: the airports reference file, then dbt's
    `airport_fallbacks` for destinations it lacks. None while the reference has not been delivered."""
    import pandas as pd
    import yaml

    from mlops_assets.transform.dbt_project import DBT_PROJECT_DIR

    key = landing_key("airports", None)
    if not landing_zone.exists(key):
        return None
    airports = pd.read_csv(io.BytesIO(landing_zone.read_bytes(key)), dtype=str, keep_default_na=False)
    zones = {
        code: tz for code, tz in zip(airports["faa"], airports["tzone"], strict=True) if tz not in ("", "NA")
    }
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    for code, airport in project["vars"]["airport_fallbacks"].items():
        zones.setdefault(code, airport["tzone"])
    return zones


def snapshot_rows(flights: list[dict[str, str]], zones: dict[str, str], hour: dt.datetime) -> dict[str, Any]:
    """The `delay_stats_<type>` rows of snapshot hour `hour` (UTC) from raw flight rows: a frame per view."""
    import duckdb
    import pandas as pd

    from mlops_assets.features.duckdb_features import delay_stats_sql, entity_table_sql
    from mlops_assets.features.flight_features import DAY_COLUMN

    day = hour.astimezone(LOCAL_TZ).date()
    raw = pd.DataFrame({name: [row.get(name, "NA") for row in flights] for name in FIELDS})
    zone_frame = pd.DataFrame({"airport_code": list(zones), "tzone": list(zones.values())})
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.register("raw_flights", raw)
        con.register("zones", zone_frame)
        con.execute(f"create temp table flights as {ARRIVALS_SQL}")
        only = int(hour.timestamp())
        con.execute(f"create temp table snapshot as {delay_stats_sql(day, day, only_hour=only)}")
        return {
            f"delay_stats_{entity}": con.execute(entity_table_sql("snapshot", entity))
            .df()
            .drop(columns=[DAY_COLUMN])
            for entity in ENTITY_TYPES
        }


class DelayFollower:
    """Keeps the flights of the last 29 days and pushes each new hour's delay statistics."""

    def __init__(self, feast: Any, landing_zone: ObjectStore, log: Callable[[str], None] = print) -> None:
        self.feast, self.landing_zone, self.log = feast, landing_zone, log
        self.streamed: dict[str, dict[str, dict[str, str]]] = {}  # day -> flight key -> fields so far
        self.delivered: dict[str, list[dict[str, str]]] = {}  # day -> rows of its landing-zone file
        self.unreadable: set[str] = set()  # days whose landing-zone file could not be read (logged once)
        self.zones: dict[str, str] | None = None
        self.newest: dt.datetime | None = None  # the newest snapshot hour pushed
        self.pushed = 0  # rows written to the online store
        self.hours = 0  # snapshot hours pushed

    def take(self, events: list[StreamEvent]) -> None:
        """Remember the flights' schedules and outcomes (a repeated event sets the same fields again)."""
        for event in events:
            if not event.kind.startswith("flight."):
                continue
            key, day = row_key_and_day(event)
            if day not in self.streamed:
                # A restarted consumer reads back months of batches: keep memory to the days a snapshot reads.
                newest = dt.date.fromisoformat(max([day, *self.streamed]))
                self.forget_before(newest - dt.timedelta(days=LOOKBACK_DAYS + 2))
            fields = {name: value for name, value in event.fields.items() if name in FIELDS}
            self.streamed.setdefault(day, {}).setdefault(key, {}).update(fields)

    def follow(self, watermark: dt.datetime | None) -> int:
        """Push the snapshot of the newest hour the watermark has reached, unless it was pushed already."""
        if watermark is None:
            return 0
        hour = watermark.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        if self.newest is not None and hour <= self.newest:
            return 0
        if self.zones is None:
            self.zones = destination_zones(self.landing_zone)
            if self.zones is None:
                self.log("online delay statistics wait for the airports reference in the landing zone")
                return 0
        day = hour.astimezone(LOCAL_TZ).date()
        tables = snapshot_rows(self.flights_for(day), self.zones, hour)
        store = self.feast.get_store()
        for view, rows in tables.items():
            if len(rows):
                store.write_to_online_store(view, rows)
        self.newest = hour
        self.hours += 1
        written = sum(len(rows) for rows in tables.values())
        self.pushed += written
        self.forget_before(day - dt.timedelta(days=LOOKBACK_DAYS + 1))
        return written

    def flights_for(self, day: dt.date) -> list[dict[str, str]]:
        """The flights of day-29 .. day: the stream's where it carried the day, else the landed file's."""
        rows: list[dict[str, str]] = []
        for offset in range(LOOKBACK_DAYS, -1, -1):
            name = (day - dt.timedelta(days=offset)).isoformat()
            streamed = self.streamed.get(name)
            if streamed and any("year" in fields for fields in streamed.values()):
                rows += [fields for fields in streamed.values() if "year" in fields]
            else:
                rows += self.delivered_day(name)
        return rows

    def delivered_day(self, day: str) -> list[dict[str, str]]:
        if day in self.delivered:
            return self.delivered[day]
        key = landing_key("flights", day)
        if not self.landing_zone.exists(key):
            return []  # not delivered (yet): asked again next hour
        import pandas as pd

        try:
            frame = pd.read_csv(
                io.BytesIO(self.landing_zone.read_bytes(key)),
                dtype=str,
                keep_default_na=False,
                usecols=FIELDS,
            )
        except (ValueError, pd.errors.ParserError) as error:
            # The raw assets quarantine such a file, so the batch leaves the day out too; a re-delivery is
            # read on the next hour (not cached).
            if day not in self.unreadable:
                self.log(f"online delay statistics leave out {key}: unreadable ({error})")
                self.unreadable.add(day)
            return []
        self.delivered[day] = frame.to_dict("records")  # a landed file never changes
        return self.delivered[day]

    def forget_before(self, day: dt.date) -> None:
        oldest = day.isoformat()
        for kept in (self.streamed, self.delivered):
            for name in [d for d in kept if d < oldest]:
                del kept[name]
