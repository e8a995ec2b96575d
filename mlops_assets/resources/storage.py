"""Object storage behind one interface: a local directory here, an S3 bucket in s3_store.py.

The landing zone and the lake are both `ObjectStore` resources. Keys are '/'-separated relative
paths. Writes are atomic: a local write goes to a hidden temporary name and is renamed into place;
an S3 PUT becomes visible only once complete. `commit(staged_key, key)` moves a staged object to its
final key in one step (a rename locally, a server-side copy on S3), so a reader of the final key sees
the old object or the new one, never a mix.

The store's root is a trust boundary: a key with a '..' (or '.', or empty) segment is refused, and a
local symbolic link below the root (to a file or a directory, inside the root or outside it) is never
followed: it is listed as a refused object that carries its target, and reading it raises
`OutsideStore`. Refusing every link keeps the rule one line long: a link that points inside the root
today can be re-pointed outside tomorrow.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from mlops_assets.lib.settings import Settings, env_setting

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
    # Why the object lies outside the store's boundary (a symbolic link, a '..' key): never read it.
    refused: str | None = None
    link_target: str | None = None  # what a refused symbolic link points to, as written in the link


S3_BUCKET_ENV = "MLOPS_S3_BUCKET"
S3_ENDPOINT_ENV = "MLOPS_S3_ENDPOINT_URL"
REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")


class OutsideStore(PermissionError):
    """A key that would resolve outside the store's root: a '..' segment or a symbolic link."""

    def __init__(self, key: str, reason: str, link: Path | None = None) -> None:
        self.key, self.reason, self.link = key, reason, link
        super().__init__(f"{key}: {reason}")


def key_problem(key: str) -> str | None:
    """Why a key is not a plain relative key of the store (None when it is)."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        return "not a relative '/'-separated key"
    if any(part in ("", ".", "..") for part in key.split("/")):
        return "a '..', '.' or empty path segment would leave or alias the store's root; refused"
    return None


def checked_key(key: str) -> str:
    problem = key_problem(key)
    if problem:
        raise OutsideStore(key, problem)
    return key


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
        """Size and version of an object; FileNotFoundError when there is none. A refused object (see
        `StoredObject.refused`) is described, not followed."""
        raise NotImplementedError

    def commit(self, staged_key: str, key: str) -> None:
        """Make the staged object visible under `key` in one step, replacing what was there, and remove
        the staged one. Readers of `key` see the previous object or this one, never a partial one."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove an object; no error when there is none."""
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
        """The key's path; OutsideStore for a '..' segment or a link anywhere below the root."""
        path = Path(self.root)
        for part in checked_key(key).split("/"):
            path = path / part
            if path.is_symlink():
                raise OutsideStore(key, _link_reason(path), link=path)
        return path

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        base = Path(self.root)
        start = base
        if prefix.strip("/"):
            try:
                start = self._path(prefix.strip("/"))
            except OutsideStore as error:
                if error.link is None:
                    raise
                return [_refused(error)]
        if not start.exists():
            return []
        found = []
        for path in _walk_entries(start):
            key = path.relative_to(base).as_posix()
            if path.is_symlink():
                found.append(_refused(OutsideStore(key, _link_reason(path), link=path)))
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # a writer's temporary file, renamed since the folder was read
                continue
            found.append(
                StoredObject(key=key, size=stat.st_size, version=f"{stat.st_mtime_ns}-{stat.st_size}")
            )
        return sorted(found, key=lambda o: o.key)

    def read_bytes(self, key: str) -> bytes:
        # O_NOFOLLOW: a link swapped in after the check in _path is still not followed.
        descriptor = os.open(self._path(key), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(descriptor, "rb") as handle:
            return handle.read()

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
        try:
            return self._path(key).is_file()
        except OutsideStore:
            return False

    def head(self, key: str) -> StoredObject:
        try:
            path = self._path(key)
        except OutsideStore as error:
            if error.link is None:
                raise
            return _refused(error)
        stat = path.stat()
        return StoredObject(key=key, size=stat.st_size, version=f"{stat.st_mtime_ns}-{stat.st_size}")

    def commit(self, staged_key: str, key: str) -> None:
        staged, target = self._path(staged_key), self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)  # one rename: both lie under the root, on one file system
        _prune_empty_parents(staged.parent, Path(self.root))

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        _prune_empty_parents(path.parent, Path(self.root))

    def uri(self, key: str) -> str:
        return str(Path(self.root) / key)


def _walk_entries(start: Path) -> Iterator[Path]:
    """Every file and every symbolic link (to a file or a folder) below start; links are not followed."""
    for directory, folders, files in os.walk(start):
        for name in files:
            yield Path(directory) / name
        for name in folders:
            if (Path(directory) / name).is_symlink():
                yield Path(directory) / name


def _link_reason(link: Path) -> str:
    return (
        f"a symbolic link to {os.readlink(link)!r}; links in the store are never followed, whether they "
        "point inside it or outside"
    )


def _refused(error: OutsideStore) -> StoredObject:
    """A refused link, described by the link itself (lstat, readlink), never by its target."""
    assert error.link is not None
    target = os.readlink(error.link)
    stat = error.link.lstat()
    digest = hashlib.sha256(target.encode()).hexdigest()[:12]
    return StoredObject(
        key=error.key,
        size=0,
        version=f"link-{stat.st_mtime_ns}-{digest}",
        refused=error.reason,
        link_target=target,
    )


def _prune_empty_parents(directory: Path, root: Path) -> None:
    """Remove folders left empty (a run's staging folders) up to the root; one still in use stays."""
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def object_stores(settings: Settings) -> dict[str, ObjectStore]:
    """`landing_zone` and `lake`: folders under MLOPS_HOME locally, prefixes of one S3 bucket in production.

    Secrets (AWS keys) stay with boto3's own chain and never pass through this config.
    """
    if settings.profile == "local":
        return {
            "landing_zone": LocalObjectStore(root=str(settings.landing_dir)),
            "lake": LocalObjectStore(root=str(settings.lake_dir)),
        }
    from dagster_aws.s3 import S3Resource

    from mlops_assets.resources.storage_s3 import S3ObjectStore

    region = next((r for r in (env_setting(name) for name in REGION_ENVS) if r is not None), "us-east-1")
    s3 = S3Resource(endpoint_url=env_setting(S3_ENDPOINT_ENV), region_name=region)
    bucket = dg.EnvVar(S3_BUCKET_ENV)
    return {
        "landing_zone": S3ObjectStore(s3=s3, bucket=bucket, prefix="landing"),
        "lake": S3ObjectStore(s3=s3, bucket=bucket, prefix="lake"),
    }


def resolve_store(store: ObjectStore) -> ObjectStore:
    """A resource outside a run (CLI, benchmarks): resolve EnvVars and nested resources."""
    with dg.build_resources({"store": store}) as built:
        return built.store
