"""Events -> the day files a delivery would have landed, once a day is complete.

The watermark is the latest event time consumed (the producer publishes in event-time order and ticks the
clock every hour, so it moves on when nothing else happens).

- flights of day D are complete when as many flights as the day's schedule manifest announces each have
  their schedule and their outcome (an arrival, a cancellation or a diversion). Counting, not the
  watermark, decides, so a redelivery that brings events out of order cannot close a day early. A flight
  whose outcome never comes does not hold the day forever: once the watermark is past D+2 00:00 the day
  closes with what is known (outcome columns 'NA'; a flight never scheduled is missing).
- weather of day D is complete just after D+1 00:00 local: the observation of 23:00 is known then (the
  next event, at the latest the next clock tick, closes it).

A day is landed once; an event for a landed day that is not a duplicate is late: counted, kept in the
lake's record, and not applied (landed files are never changed).
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from mlops_assets.ingestion.contracts import FLIGHTS, WEATHER
from mlops_assets.streaming.events import OUTCOME_COLUMNS, StreamEvent, local_midnight

COLUMNS = {"flights": FLIGHTS.column_names, "weather": WEATHER.column_names}
TERMINAL = frozenset({"flight.arrived", "flight.cancelled", "flight.diverted"})


class DayAssembler:
    def __init__(self) -> None:
        self.watermark: dt.datetime | None = None
        # (table, day) -> row key -> (upstream order, fields so far, outcome known)
        self.rows: dict[tuple[str, str], dict[str, tuple[int, dict[str, str], bool]]] = {}
        self.expected: dict[str, int] = {}  # day -> flights its schedule manifest announces
        self.landed: set[tuple[str, str]] = set()
        self.late = 0

    def apply(self, event: StreamEvent) -> None:
        if self.watermark is None or event.time > self.watermark:
            self.watermark = event.time
        if event.kind == "schedule.published":
            day = event.fields["day"]
            if ("flights", day) not in self.landed:
                self.expected[day] = int(event.fields["flights"])
                self.rows.setdefault(("flights", day), {})
                self.rows.setdefault(("weather", day), {})
            return
        if event.table is None:
            return
        key, day = row_key_and_day(event)
        if (event.table, day) in self.landed:
            self.late += 1
            return
        rows = self.rows.setdefault((event.table, day), {})
        if event.table == "flights":
            # Another table's day opens with it: weather of a day with flights gets its file even when empty
            self.rows.setdefault(("weather", day), {})
        order, fields, done = rows.get(key, (event.order, {}, False))
        rows[key] = (order, {**fields, **event.fields}, done or event.kind in TERMINAL)

    def complete(self) -> list[tuple[str, str]]:
        """(table, day) pairs complete by now and not landed yet, oldest first."""
        if self.watermark is None:
            return []
        done = []
        for table, day in sorted(self.rows, key=lambda td: (td[1], td[0])):
            if (table, day) in self.landed:
                continue
            start = dt.date.fromisoformat(day)
            if table == "weather":
                # Strictly after: other events of that same instant may still come after the watermark's.
                ready = self.watermark > local_midnight(start + dt.timedelta(days=1))
            else:
                rows = self.rows[(table, day)].values()
                whole = sum(1 for _, fields, known in rows if known and "year" in fields)
                counted = day in self.expected and whole == self.expected[day] == len(rows)
                ready = counted or self.watermark > local_midnight(start + dt.timedelta(days=2))
            if ready:
                done.append((table, day))
        return done

    def day_file(self, table: str, day: str) -> bytes:
        """The day's CSV as a delivery writes it (pandas' to_csv of the upstream text: minimal quoting,
        '\\n' line ends, rows in the upstream's order)."""
        columns = COLUMNS[table]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(columns)
        for _, fields, _ in sorted(self.rows.get((table, day), {}).values(), key=lambda r: r[0]):
            missing = dict.fromkeys(OUTCOME_COLUMNS, "NA") if table == "flights" else {}
            row = {**missing, **fields}
            writer.writerow([row[c] for c in columns])
        return buffer.getvalue().encode()

    def mark_landed(self, table: str, day: str) -> None:
        self.landed.add((table, day))
        self.rows.pop((table, day), None)  # a landed day's rows are in the file; memory stays a few days
        if table == "flights":
            self.expected.pop(day, None)


def row_key_and_day(event: StreamEvent) -> tuple[str, str]:
    if event.table == "flights":  # flight/<day>/<carrier>/<number>/<sched_dep_time>/<kind>
        key = event.id.rsplit("/", 1)[0]
        return key, key.split("/")[1]
    f = event.fields
    return event.id, f"{int(f['year']):04d}-{int(f['month']):02d}-{int(f['day']):02d}"
