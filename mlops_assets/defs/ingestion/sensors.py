"""The landing-zone sensor: every new or changed file is ingested by a run of its partition.

- What a file's run is (its run_key, one run for the tables of a day, ranged runs for a backlog):
  ingestion/landing.py; a lone complete day's run goes on to the day's drift report: ingestion/day_chain.py.
- The cursor (JSON, stored by Dagster in the instance, so it survives a daemon restart) remembers the
  version last requested for each key, so a tick only emits what changed since the last one.
- Hidden and temporary names (".x.csv.tmp-…", "*.part", "_COPYING_") are still being written: skipped.
- The landing zone is a trust boundary. The listing never follows a symbolic link (to a file or a
  folder, inside the zone or out) and flags keys with '..' segments (S3): such an entry is logged as
  refused, with its target. One that carries a landing file's name still gets its run, whose asset
  refuses to read it, records it in the quarantine by reference (reason.json with the link target,
  no bytes) and fails, so the refusal is seen where a delivery's outcome is looked for.
"""

import json

import dagster as dg

from mlops_assets.ingestion.contracts import DAILY_TABLES, REFERENCE_TABLES
from mlops_assets.ingestion.day_chain import DAILY_RAW, chained_request
from mlops_assets.ingestion.landing import (
    SENSOR_NAME,
    batch_backlog,
    run_request_for,
    same_partition_together,
)
from mlops_assets.resources.storage import ObjectStore, is_temporary


def build_landing_zone_sensor(partition_keys: set[str]) -> dg.SensorDefinition:
    targets = [dg.AssetKey(["raw", t]) for t in (*REFERENCE_TABLES, *DAILY_TABLES)]

    @dg.sensor(
        name=SENSOR_NAME,
        description=(
            "Turns each new or re-delivered landing-zone file into a run of its raw partition. A lone "
            "complete day, with nothing else running, gets one run on to its drift report."
        ),
        # The raw tables, and what a lone complete day's run goes on to (ingestion/day_chain.py): Dagster
        # refuses a request for an asset outside the sensor's selection.
        asset_selection=(
            dg.AssetSelection.assets(*targets) | dg.AssetSelection.assets(*DAILY_RAW).downstream()
        ),
        # A listing of the landing zone is cheap; a landed day waits less. 4, not 5: the daemon looks every
        # 5 s and skips a sensor whose interval has not quite passed, so 5 ticked every 5 or 10 s.
        minimum_interval_seconds=4,
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
        requests, how = chained_request(context, requests)
        context.log.info(how)
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return landing_zone_sensor
