"""JSON records that one asset writes to the lake and another reads, stamped with the identity Dagster
tracks for the materialization that wrote them.

A record's `dagster` block names the asset, partition and run; the writer puts the record's key and
SHA-256 in its materialization metadata, so a reader (or a person in the UI) can say exactly which
materialization it consumed, and `consumed_metadata` puts that on the reader's materialization.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg

    from mlops_assets.resources.storage import ObjectStore

IDENTITY = "dagster"


@dataclass(frozen=True)
class Record:
    key: str
    body: dict[str, Any]
    sha256: str

    @property
    def run_id(self) -> str | None:
        return (self.body.get(IDENTITY) or {}).get("run_id")

    @property
    def partition(self) -> str | None:
        return (self.body.get(IDENTITY) or {}).get("partition")


def identity(context: dg.AssetExecutionContext, partition: str | None = None) -> dict[str, Any]:
    """What Dagster knows of the materialization writing a record: asset, partition and run."""
    return {
        "asset": context.asset_key.to_user_string(),
        "partition": partition,
        "run_id": context.run.run_id,
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, indent=1, sort_keys=True, default=str).encode()


def write_record(
    lake: ObjectStore,
    key: str,
    body: dict[str, Any],
    context: dg.AssetExecutionContext,
    partition: str | None = None,
) -> Record:
    """Writes `body` with its identity block (atomically, as every lake write) and returns the record."""
    stamped = {**body, IDENTITY: identity(context, partition)}
    data = encode(stamped)
    lake.write_bytes(key, data)
    return Record(key=key, body=stamped, sha256=hashlib.sha256(data).hexdigest())


def read_record(lake: ObjectStore, key: str) -> Record:
    data = lake.read_bytes(key)
    return Record(key=key, body=json.loads(data), sha256=hashlib.sha256(data).hexdigest())


def written_metadata(record: Record) -> dict[str, Any]:
    """Materialization metadata of the writer: where the record is and what it hashes to."""
    return {"record_key": record.key, "record_sha256": record.sha256}


def consumed_metadata(records: list[Record]) -> dict[str, Any]:
    """Materialization metadata of a reader: each record it read, with the run that wrote it."""
    import dagster as dg

    return {
        "consumed_records": dg.MetadataValue.json(
            [
                {"key": r.key, "sha256": r.sha256, "run_id": r.run_id, "partition": r.partition}
                for r in records
            ]
        )
    }
