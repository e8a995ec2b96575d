"""Object storage behind one interface: a local directory here, an S3 bucket in s3_store.py.

The landing zone and the lake are both `ObjectStore` resources. Keys are '/'-separated relative
paths. Writes are atomic: a local write goes to a hidden temporary name and is renamed into place;
an S3 PUT becomes visible only once complete.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

# Names an upstream writer uses while a file is still being written; never ingest these.
TEMPORARY_MARKERS = (".tmp", ".part", "._COPYING_", ".crdownload", ".partial")


def is_temporary(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name.startswith((".", "_")) or name.endswith(TEMPORARY_MARKERS) or ".tmp-" in name


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    version: str  # changes whenever the content is replaced (mtime+size locally, ETag on S3)


class ObjectStore(dg.ConfigurableResource):
    """Interface shared by the local and S3 implementations."""

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def uri(self, key: str) -> str:
        """Where a reader outside Python (DuckDB, Spark, a person) finds the object."""
        raise NotImplementedError

    def head(self, key: str) -> StoredObject:
        """Size and version of an object; FileNotFoundError when there is none."""
        raise NotImplementedError

    # Parquet helpers shared by both implementations.
    def write_parquet(self, key: str, frame) -> None:  # frame: pandas.DataFrame
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        self.write_bytes(key, buffer.getvalue())

    def read_parquet(self, key: str):
        import pandas as pd

        return pd.read_parquet(io.BytesIO(self.read_bytes(key)))


class LocalObjectStore(ObjectStore):
    """A directory on the local file system."""

    root: str = Field(description="Directory that holds the objects; created on first write.")

    def _path(self, key: str) -> Path:
        return Path(self.root) / key

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        base = Path(self.root)
        start = base / prefix if prefix else base
        if not start.exists():
            return []
        found = []
        for path in _walk_files(start):
            stat = path.stat()
            key = path.relative_to(base).as_posix()
            found.append(
                StoredObject(key=key, size=stat.st_size, version=f"{stat.st_mtime_ns}-{stat.st_size}")
            )
        return sorted(found, key=lambda o: o.key)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def head(self, key: str) -> StoredObject:
        stat = self._path(key).stat()
        return StoredObject(key=key, size=stat.st_size, version=f"{stat.st_mtime_ns}-{stat.st_size}")

    def uri(self, key: str) -> str:
        return str(self._path(key))


def _walk_files(start: Path) -> Iterator[Path]:
    for directory, _, files in os.walk(start):
        for name in files:
            yield Path(directory) / name
