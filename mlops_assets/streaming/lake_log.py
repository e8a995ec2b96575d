"""The stream's durable record in the lake: one JSON-lines file per micro-batch.

`stream/<name>/batches/<ns>-<pid>.jsonl` holds the batch's events, each with its message id, so the ids a
restarted consumer has already written are read back from the same files that hold the events: there is
no second record that could disagree with the first. Each file is written atomically by the store
(temporary name, fsync, rename): a consumer killed mid-write leaves a hidden temporary file that nothing
reads, never half a batch. Messages the consumer cannot read go to `stream/<name>/rejected/`, the same way.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

from mlops_assets.resources.storage import ObjectStore, is_temporary


class LakeLog:
    def __init__(self, lake: ObjectStore, name: str) -> None:
        self.lake, self.name = lake, name

    def prefix(self, kind: str = "batches") -> str:
        return f"stream/{self.name}/{kind}/"

    def batch_keys(self, kind: str = "batches") -> list[str]:
        found = [o.key for o in self.lake.list_objects(self.prefix(kind)) if o.refused is None]
        return sorted(k for k in found if not is_temporary(k) and k.endswith(".jsonl"))

    def records(self) -> Iterator[dict]:
        """Every recorded event, batch by batch in the order they were written."""
        for key in self.batch_keys():
            for line in self.lake.read_bytes(key).splitlines():
                if line:
                    yield json.loads(line)

    def write(self, records: list[dict], kind: str = "batches") -> str:
        # The name sorts by time of writing; the pid tells two consumers' files apart should one ever run
        # beside another (single-active-consumer on the queue is meant to prevent it).
        key = f"{self.prefix(kind)}{time.time_ns():020d}-{os.getpid()}.jsonl"
        body = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
        self.lake.write_bytes(key, body)
        return key
