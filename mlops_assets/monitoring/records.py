"""The lake side of monitoring: where each day's record and report go, and what the reports read.

Each monitoring asset writes `monitoring/{asset}/{day}.json` (and `.html`); the retraining sensor, the
schedule and `mlops summary` read those records, so the loop works the same on a local folder and on S3.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.lib.calendar import window_days
from mlops_assets.lib.records import Record, read_record
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.serving.batch import predictions_key, summary_key


def record_key(asset: dg.AssetKey, day: dt.date | str, suffix: str = "json") -> str:
    return f"monitoring/{asset.path[-1]}/{day}.{suffix}"


def read_records(lake: ObjectStore, asset: dg.AssetKey) -> list[dict[str, Any]]:
    """Every day's record of a monitoring asset, oldest first."""
    prefix = f"monitoring/{asset.path[-1]}/"
    keys = sorted(o.key for o in lake.list_objects(prefix) if o.key.endswith(".json"))
    return [json.loads(lake.read_bytes(k)) for k in keys]


def partition_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    window = context.partition_time_window
    return window_days(window)


def read_predictions(lake: ObjectStore, day: dt.date):
    key = predictions_key(day)
    if not lake.exists(key):
        raise dg.Failure(f"{lake.uri(key)} does not exist: materialize batch_predictions for {day}")
    return lake.read_parquet(key)


def predictions_summaries(lake: ObjectStore, day: dt.date) -> list[Record]:
    """The day summary that batch_predictions wrote with the day's rows, for the reader's metadata.
    Empty for rows scored before batch_predictions wrote summaries: they still read, unattributed."""
    key = summary_key(day)
    return [read_record(lake, key)] if lake.exists(key) else []


def save_html(lake: ObjectStore, snapshot, key: str, scratch: Path) -> str:
    """Evidently writes HTML to a file; the lake gets it atomically. Returns the lake URI."""
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / Path(key).name
    snapshot.save_html(str(path))
    lake.write_bytes(key, path.read_bytes())
    path.unlink()
    return lake.uri(key)


def link(uri: str) -> dg.MetadataValue:
    return dg.MetadataValue.url(uri) if "://" in uri else dg.MetadataValue.path(uri)


def by_day_table(rows: list[dict[str, Any]], floatfmt: str) -> dg.MetadataValue:
    """The run's days side by side (range-wide: the same table on every partition of the run)."""
    import pandas as pd

    return dg.MetadataValue.md(pd.DataFrame(rows).to_markdown(index=False, floatfmt=floatfmt))
