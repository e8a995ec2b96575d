"""The daily partitions of the data set: every local (New York) departure day of 2013."""

from __future__ import annotations

import datetime as dt
import functools

import dagster as dg

FIRST_DAY = dt.date(2013, 1, 1)
LAST_DAY = dt.date(2013, 12, 31)


@functools.cache
def daily_partitions() -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=FIRST_DAY.isoformat(), end_date=(LAST_DAY + dt.timedelta(days=1)).isoformat()
    )


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """Run tags that make one run cover partitions first..last (what `--partition-range` sets)."""
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Inclusive range of days."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
