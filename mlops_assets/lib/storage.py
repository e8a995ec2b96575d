"""Object storage behind one interface: a local directory or an S3 bucket (any S3 endpoint).

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
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

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


class S3ObjectStore(ObjectStore):
    """A bucket (and optional prefix) on S3 or any S3-compatible store, through dagster-aws."""

    s3: S3Resource
    bucket: str = Field(description="Bucket name.")
    prefix: str = Field(default="", description="Key prefix inside the bucket, without a trailing '/'.")

    # One boto3 client per store, made on first use: `S3Resource.get_client()` builds a new boto3
    # session and resource each call (~0.1-0.5 s), far more than the request itself. Clients are
    # thread-safe.
    _client: Any = PrivateAttr(default=None)

    def _s3(self) -> Any:
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def _relative(self, full_key: str) -> str:
        stripped = self.prefix.strip("/")
        return full_key[len(stripped) + 1 :] if stripped else full_key

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        paginator = self._s3().get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                found.append(
                    StoredObject(
                        key=self._relative(item["Key"]),
                        size=int(item["Size"]),
                        version=item["ETag"].strip('"'),
                    )
                )
        return sorted(found, key=lambda o: o.key)

    def read_bytes(self, key: str) -> bytes:
        response = self._s3().get_object(Bucket=self.bucket, Key=self._key(key))
        return response["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.head(key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def head(self, key: str) -> StoredObject:
        response = self._s3().head_object(Bucket=self.bucket, Key=self._key(key))
        return StoredObject(key=key, size=int(response["ContentLength"]), version=response["ETag"].strip('"'))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"
