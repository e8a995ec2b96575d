"""The daily partitions of the data set: every local (New York) departure day of 2013, and the time zone
and run tags that go with them. Importable without Dagster (the `ml/` core uses the time zone)."""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import dagster as dg

FIRST_DAY = dt.date(2013, 1, 1)
LAST_DAY = dt.date(2013, 12, 31)
# A partition is a local departure day in New York, where every flight of the data set leaves from.
LOCAL_TZ_NAME = "America/New_York"
LOCAL_TZ = ZoneInfo(LOCAL_TZ_NAME)
# What `dagster asset materialize --partition-range` and a ranged backfill put on a run.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@functools.cache
def daily_partitions() -> dg.DailyPartitionsDefinition:
    import dagster as dg

    return dg.DailyPartitionsDefinition(
        start_date=FIRST_DAY.isoformat(), end_date=(LAST_DAY + dt.timedelta(days=1)).isoformat()
    )


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover partitions first..last (what `--partition-range` sets)."""
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Inclusive range of days."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def window_bounds(window: dg.TimeWindow) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of a daily partition window (its `end` is the next midnight)."""
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def window_days(window: dg.TimeWindow) -> list[dt.date]:
    """Every day of a daily partition window."""
    return days_between(*window_bounds(window))
