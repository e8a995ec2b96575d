"""The landing-zone sensor: every new or changed file is ingested by a run of its partition.

- run_key = "<key>@<version>": Dagster never launches the same run_key twice, so a file is ingested
  exactly once, and a re-delivered (changed) file, which has a new version, is ingested again.
- The tables of one day that arrive in the same tick share one run (its key joins the files' keys with
  "+"): one process instead of two, and dbt then sees the whole day at once instead of a table at a time.
- A backlog (a month delivered at once, a daemon that was stopped for weeks) would queue hundreds of
  one-file runs, each paying for a process and its imports. When one tick finds more than
  `BACKLOG_DAYS` new days of a table, consecutive days go into ranged runs of up to `MAX_RANGE_DAYS`
  (the raw assets' single-run backfill policy), keyed by the range and a digest of its files' versions.
- The cursor (JSON, stored by Dagster in the instance, so it survives a daemon restart) remembers the
  version last requested for each key, so a tick only emits what changed since the last one.
- Hidden and temporary names (".x.csv.tmp-…", "*.part", "_COPYING_") are still being written: skipped.
- The landing zone is a trust boundary. The listing never follows a symbolic link (to a file or a
  folder, inside the zone or out) and flags keys with '..' segments (S3): such an entry is logged as
  refused, with its target. One that carries a landing file's name still gets its run, whose asset
  refuses to read it, records it in the quarantine by reference (reason.json with the link target,
  no bytes) and fails, so the refusal is seen where a delivery's outcome is looked for.
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
# Dagster's tags of a ranged run (what `dagster asset materialize --partition-range` sets).
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


def build_landing_zone_sensor(partition_keys: set[str]) -> dg.SensorDefinition:
    targets = [dg.AssetKey(["raw", t]) for t in (*REFERENCE_TABLES, *DAILY_TABLES)]

    @dg.sensor(
        name=SENSOR_NAME,
        description="Turns each new or re-delivered landing-zone file into a run of its raw partition.",
        asset_selection=targets,
        minimum_interval_seconds=5,  # a listing of the landing zone is cheap; a landed day waits less
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext, landing_zone: ObjectStore):
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        requests, skipped, refused = [], [], []
        # Reference files first, so carriers exist before the flights that are validated against them.
        landed = sorted(
            landing_zone.list_objects(), key=lambda o: (not o.key.startswith("reference/"), o.key)
        )
        for item in landed:
            if is_temporary(item.key) or seen.get(item.key) == item.version:
                continue
            if item.refused:
                refused.append(f"{item.key}: {item.refused}")
            request = run_request_for(item, partition_keys)
            if request is None:
                if not item.refused:
                    skipped.append(item.key)
                continue
            requests.append(request)
            seen[item.key] = item.version
        if skipped:
            context.log.warning(f"not ingested (unknown table, name or day): {skipped[:20]}")
        for reason in refused[:20]:
            context.log.warning(f"refused, never read (outside the landing zone's boundary): {reason}")
        if not requests:
            return dg.SkipReason(
                f"no new files among {len(landed)} in the landing zone"
                + (f"; refused: {'; '.join(refused[:5])}" if refused else ""),
            )
        requests = same_partition_together(batch_backlog(requests, {item.key: item for item in landed}))
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return landing_zone_sensor
