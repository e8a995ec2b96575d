"""The S3 implementation of `ObjectStore` (any S3-compatible endpoint), through dagster-aws.

Kept apart from storage.py so that the local profile never imports dagster_aws.s3 (about 1 s).
"""

from __future__ import annotations

from typing import Any

from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from mlops_assets.resources.storage import ObjectStore, OutsideStore, StoredObject, checked_key, key_problem


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

    def _object(self, key: str) -> str:
        """The full key of an object to read or write: S3 does not resolve '..', but every reader
        that maps keys onto paths (DuckDB, Spark, a sync to disk) may, so such a key is refused."""
        return self._key(checked_key(key))

    def _relative(self, full_key: str) -> str:
        stripped = self.prefix.strip("/")
        return full_key[len(stripped) + 1 :] if stripped else full_key

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        paginator = self._s3().get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                key = self._relative(item["Key"])
                if key.endswith("/") and not item["Size"]:
                    continue  # a console's "folder" placeholder, not an object
                found.append(
                    StoredObject(
                        key=key,
                        size=int(item["Size"]),
                        version=item["ETag"].strip('"'),
                        refused=key_problem(key),
                    )
                )
        return sorted(found, key=lambda o: o.key)

    def read_bytes(self, key: str) -> bytes:
        response = self._s3().get_object(Bucket=self.bucket, Key=self._object(key))
        return response["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self._s3().put_object(Bucket=self.bucket, Key=self._object(key), Body=data)

    def commit(self, staged_key: str, key: str) -> None:
        # CopyObject is server-side and the copy becomes visible only once complete (up to 5 GB,
        # far above a day's Parquet file); the staged object is removed after.
        source = {"Bucket": self.bucket, "Key": self._object(staged_key)}
        self._s3().copy_object(Bucket=self.bucket, Key=self._object(key), CopySource=source)
        self.delete(staged_key)

    def delete(self, key: str) -> None:
        self._s3().delete_object(Bucket=self.bucket, Key=self._object(key))

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except (FileNotFoundError, OutsideStore):
            return False
        return True

    def head(self, key: str) -> StoredObject:
        from botocore.exceptions import ClientError

        try:
            response = self._s3().head_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(self.uri(key)) from error
            raise
        return StoredObject(key=key, size=int(response["ContentLength"]), version=response["ETag"].strip('"'))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"
