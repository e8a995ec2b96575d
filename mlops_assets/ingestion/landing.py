"""The landing zone as the sensor reads it: which files are ingested, and the runs that ingest them.

- run_key = "<key>@<version>": Dagster never launches the same run_key twice, so a file is ingested
  exactly once, and a re-delivered (changed) file, which has a new version, is ingested again.
- The tables of one day that arrive in the same tick share one run (its key joins the files' keys with
  "+"): one process instead of two, and dbt then sees the whole day at once instead of a table at a time.
- A backlog (a month delivered at once, a daemon that was stopped for weeks) would queue hundreds of
  one-file runs, each paying for a process and its imports. When one tick finds more than
  `BACKLOG_DAYS` new days of a table, consecutive days go into ranged runs of up to `MAX_RANGE_DAYS`
  (the raw assets' single-run backfill policy), keyed by the range and a digest of its files' versions.

The sensor itself (its cursor, the trust boundary of the listing) is defs/ingestion/sensors.py.
"""

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator

import dagster as dg

from mlops_assets.ingestion.contracts import DAILY_TABLES, REFERENCE_TABLES
from mlops_assets.lib.calendar import RANGE_END_TAG, RANGE_START_TAG
from mlops_assets.resources.storage import ObjectStore, StoredObject, is_temporary

DAILY_FILE = re.compile(r"^(?P<table>[a-z_]+)/(?P<day>\d{4}-\d{2}-\d{2})\.csv$")
REFERENCE_FILE = re.compile(r"^reference/(?P<table>[a-z_]+)\.csv$")
SENSOR_NAME = "landing_zone_sensor"
FILE_TAG = "mlops/landed_file"
VERSION_TAG = "mlops/landed_version"
BACKLOG_DAYS = 7  # more new days of one table than this in one tick: ranged runs
MAX_RANGE_DAYS = 31  # a ranged run's blocking checks gate all its days: keep the blast radius a month


def run_request_for(landed: StoredObject, partition_keys: set[str]) -> dg.RunRequest | None:
    """The run that ingests this file, or None when the file is not one the platform ingests."""
    tags = {FILE_TAG: landed.key, VERSION_TAG: landed.version}
    run_key = f"{landed.key}@{landed.version}"
    daily = DAILY_FILE.match(landed.key)
    if daily and daily["table"] in DAILY_TABLES and daily["day"] in partition_keys:
        return dg.RunRequest(
            run_key=run_key,
            asset_selection=[dg.AssetKey(["raw", daily["table"]])],
            partition_key=daily["day"],
            tags=tags,
        )
    reference = REFERENCE_FILE.match(landed.key)
    if reference and reference["table"] in REFERENCE_TABLES:
        return dg.RunRequest(
            run_key=run_key, asset_selection=[dg.AssetKey(["raw", reference["table"]])], tags=tags
        )
    return None


def consecutive_ranges(days: list[str], longest: int) -> Iterator[list[str]]:
    """ISO days -> runs of consecutive days, in order, none longer than `longest`."""
    current: list[str] = []
    for day in sorted(days):
        gap = dt.date.fromisoformat(day) - dt.date.fromisoformat(current[-1]) if current else None
        if current and (gap != dt.timedelta(days=1) or len(current) == longest):
            yield current
            current = []
        current.append(day)
    if current:
        yield current


def ranged_request(table: str, files: list[StoredObject]) -> dg.RunRequest:
    """One run ingesting consecutive days of a table (files sorted by day)."""
    first, last = (DAILY_FILE.match(f.key)["day"] for f in (files[0], files[-1]))
    digest = hashlib.sha256("\n".join(f"{f.key}@{f.version}" for f in files).encode()).hexdigest()[:16]
    return dg.RunRequest(
        run_key=f"{table}/{first}..{last}@{digest}",
        asset_selection=[dg.AssetKey(["raw", table])],
        tags={
            FILE_TAG: f"{table}/{first}..{last}.csv ({len(files)} files)",
            VERSION_TAG: digest,
            RANGE_START_TAG: first,
            RANGE_END_TAG: last,
        },
    )


def batch_backlog(requests: list[dg.RunRequest], landed: dict[str, StoredObject]) -> list[dg.RunRequest]:
    """Per-file requests -> the same, except that a table with a backlog gets ranged runs instead."""
    by_table: dict[str, list[dg.RunRequest]] = {}
    for request in requests:
        if request.partition_key:
            by_table.setdefault(request.asset_selection[0].path[-1], []).append(request)
    batched = [r for r in requests if not r.partition_key]  # reference tables, first
    for table, daily in by_table.items():
        if len(daily) <= BACKLOG_DAYS:
            batched += daily
            continue
        by_day = {r.partition_key: r for r in daily}
        for days in consecutive_ranges(list(by_day), MAX_RANGE_DAYS):
            if len(days) == 1:  # a lone day keeps its one-file run
                batched.append(by_day[days[0]])
            else:
                batched.append(ranged_request(table, [landed[by_day[d].tags[FILE_TAG]] for d in days]))
    return batched


def same_partition_together(requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """Requests of the same day (or the same range) of different tables -> one request for all of them."""
    merged: dict[tuple, list[dg.RunRequest]] = {}
    for request in requests:
        span = (request.partition_key, request.tags.get(RANGE_START_TAG), request.tags.get(RANGE_END_TAG))
        merged.setdefault(span if span != (None, None, None) else (id(request),), []).append(request)
    together = []
    for group in merged.values():
        if len(group) == 1:
            together.append(group[0])
            continue
        tags = {**group[0].tags}
        for name in (FILE_TAG, VERSION_TAG):
            tags[name] = ",".join(r.tags[name] for r in group)
        together.append(
            dg.RunRequest(
                run_key="+".join(r.run_key for r in group),
                asset_selection=[key for r in group for key in r.asset_selection],
                partition_key=group[0].partition_key,
                tags=tags,
            )
        )
    return together


def cursor_of(landing_zone: ObjectStore) -> str:
    """The cursor of a sensor that has seen every file now in the landing zone (for runs made by hand)."""
    seen = {o.key: o.version for o in landing_zone.list_objects() if not is_temporary(o.key)}
    return json.dumps(seen, sort_keys=True)
