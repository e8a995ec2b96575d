"""Where rejected data goes: whole files with a machine-readable reason, or rows with one reason each.

Layout in the lake (a local directory or S3):
  quarantine/<table>/files/<partition>/<version>/<file name>   the landed bytes, untouched
  quarantine/<table>/files/<partition>/<version>/reason.json   {"file", "line", "column", "problem", ...}
  quarantine/<table>/rows/<partition>.parquet                   the rows' text, source file, line, reason
The landed file itself is never deleted.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from mlops_assets.defs.ingestion.parsing import UnreadableFile
from mlops_assets.lib.storage import ObjectStore, StoredObject


def safe_version(version: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in version)


def quarantine_file(
    lake: ObjectStore, table: str, partition: str, landed: StoredObject, data: bytes, error: UnreadableFile
) -> str:
    folder = f"quarantine/{table}/files/{partition}/{safe_version(landed.version)}"
    name = landed.key.rsplit("/", 1)[-1]
    lake.write_bytes(f"{folder}/{name}", data)
    record = {
        **error.as_record(),
        "table": table,
        "partition": partition,
        "landed_key": landed.key,
        "landed_version": landed.version,
        "bytes": len(data),
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    lake.write_bytes(f"{folder}/reason.json", json.dumps(record, indent=2).encode())
    return lake.uri(f"{folder}/reason.json")


def rows_key(table: str, partition: str) -> str:
    return f"quarantine/{table}/rows/{partition}.parquet"


def write_quarantined_rows(lake: ObjectStore, table: str, partition: str, rows: pd.DataFrame) -> None:
    # Written even when empty, so a corrected re-delivery replaces the rows quarantined before.
    lake.write_parquet(rows_key(table, partition), rows)
