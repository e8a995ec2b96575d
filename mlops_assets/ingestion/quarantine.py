"""Where rejected data goes: whole files with a machine-readable reason, or rows with one reason each.

Layout in the lake (a local directory or S3):
  quarantine/<table>/files/<partition>/<version>/<file name>   the landed bytes, untouched
  quarantine/<table>/files/<partition>/<version>/reason.json   {"file", "line", "column", "problem", ...}
  quarantine/<table>/rows/<partition>.parquet                   rows quarantined from the stored delivery
  quarantine/<table>/refused/<partition>/<version>/rows.parquet rows quarantined from a refused delivery
  quarantine/<table>/refused/<partition>/<version>/reason.json  why that delivery was refused
A link (or a '..' key) in the landing zone gets a reason.json under files/ with the link's target and
no bytes: its target is never read. The landed file itself is never deleted.
"""

from __future__ import annotations

import datetime as dt
import json

from mlops_assets.ingestion.parsing import UnreadableFile
from mlops_assets.resources.storage import ObjectStore, StoredObject

REFUSED_LINK_PROBLEM = "refused, not read"


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


def quarantine_reference(lake: ObjectStore, table: str, partition: str, landed: StoredObject) -> str:
    """Record a refused landing-zone entry (a link, a '..' key) by reference: its target is not read."""
    folder = f"quarantine/{table}/files/{partition}/{safe_version(landed.version)}"
    record = {
        "file": landed.key,
        "line": 0,
        "column": "-",
        "problem": f"{REFUSED_LINK_PROBLEM}: {landed.refused}",
        "link_target": landed.link_target,
        "table": table,
        "partition": partition,
        "landed_key": landed.key,
        "landed_version": landed.version,
        "bytes": 0,
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    lake.write_bytes(f"{folder}/reason.json", json.dumps(record, indent=2).encode())
    return lake.uri(f"{folder}/reason.json")


def rows_key(table: str, partition: str) -> str:
    return f"quarantine/{table}/rows/{partition}.parquet"


def refused_folder(table: str, partition: str, version: str) -> str:
    return f"quarantine/{table}/refused/{partition}/{safe_version(version)}"


def write_refusal(lake: ObjectStore, folder: str, record: dict[str, object]) -> str:
    body = {**record, "refused_at": dt.datetime.now(dt.UTC).isoformat()}
    lake.write_bytes(f"{folder}/reason.json", json.dumps(body, indent=2, default=str).encode())
    return lake.uri(f"{folder}/reason.json")
