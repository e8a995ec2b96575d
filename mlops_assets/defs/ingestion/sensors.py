"""The landing-zone sensor: every new or changed file becomes one run of its partition.

- run_key = "<key>@<version>": Dagster never launches the same run_key twice, so a file is ingested
  exactly once, and a re-delivered (changed) file, which has a new version, is ingested again.
- The cursor (JSON, stored by Dagster in the instance, so it survives a daemon restart) remembers the
  version last requested for each key, so a tick only emits what changed since the last one.
- Hidden and temporary names (".x.csv.tmp-…", "*.part", "_COPYING_") are still being written: skipped.
"""

import json
import re

import dagster as dg

from mlops_assets.defs.ingestion.contracts import DAILY_TABLES, REFERENCE_TABLES
from mlops_assets.lib.storage import ObjectStore, StoredObject, is_temporary

DAILY_FILE = re.compile(r"^(?P<table>[a-z_]+)/(?P<day>\d{4}-\d{2}-\d{2})\.csv$")
REFERENCE_FILE = re.compile(r"^reference/(?P<table>[a-z_]+)\.csv$")
SENSOR_NAME = "landing_zone_sensor"
FILE_TAG = "mlops/landed_file"
VERSION_TAG = "mlops/landed_version"


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
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext, landing_zone: ObjectStore):
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        requests, skipped = [], []
        # Reference files first, so carriers exist before the flights that are validated against them.
        landed = sorted(
            landing_zone.list_objects(), key=lambda o: (not o.key.startswith("reference/"), o.key)
        )
        for item in landed:
            if is_temporary(item.key) or seen.get(item.key) == item.version:
                continue
            request = run_request_for(item, partition_keys)
            if request is None:
                skipped.append(item.key)
                continue
            requests.append(request)
            seen[item.key] = item.version
        if skipped:
            context.log.warning(f"not ingested (unknown table, name or day): {skipped[:20]}")
        if not requests:
            return dg.SkipReason(f"no new files among {len(landed)} in the landing zone")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return landing_zone_sensor
