"""Stage, check, then commit: a delivery replaces a partition only after its blocking checks passed.

A run writes what it would store (accepted Parquet and quarantined rows) under `_staging/<run_id>/`
in the lake, next to nothing a reader ever lists (readers read `raw/...` and `quarantine/...` only).
Once every check passed, each object moves to its final key with `ObjectStore.commit`: one rename on
a local disk (same file system), one server-side copy on S3. A reader of a final key sees the previous
delivery or the new one, never a mix and never a refused one.

A process killed between staging and commit leaves its staging folder behind; it is never visible as
data, and the next ingestion run removes the staging folders of runs that are no longer in progress.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from mlops_assets.resources.storage import ObjectStore

# A leading "_" marks a name that holds no data for Spark, Hive and most lake tools, so a recursive
# reader of the lake skips the staging folder too.
STAGING_PREFIX = "_staging"


class Staging:
    """The objects one run has staged, by final key."""

    def __init__(self, lake: ObjectStore, run_id: str) -> None:
        self.lake, self.run_id = lake, run_id
        self.staged: dict[str, str] = {}  # final key -> staged key

    def key(self, final_key: str) -> str:
        return f"{STAGING_PREFIX}/{self.run_id}/{final_key}"

    def write_parquet(self, final_key: str, frame) -> None:
        staged = self.key(final_key)
        self.lake.write_parquet(staged, frame)
        self.staged[final_key] = staged

    def commit(self, final_key: str, to: str | None = None) -> str:
        """Publish one staged object under its final key (or under `to`); returns where it went."""
        target = to or final_key
        self.lake.commit(self.staged.pop(final_key), target)
        return target

    def commit_all(self, order: Callable[[str], object] = str) -> list[str]:
        return [self.commit(final_key) for final_key in sorted(self.staged, key=order)]

    def discard(self) -> None:
        for staged in self.staged.values():
            self.lake.delete(staged)
        self.staged.clear()


def remove_abandoned_staging(lake: ObjectStore, instance: dg.DagsterInstance, run_id: str) -> int:
    """Delete the staging objects of runs that are not in progress (killed, failed, unknown here)."""
    by_run: dict[str, list[str]] = {}
    for item in lake.list_objects(f"{STAGING_PREFIX}/"):
        parts = item.key.split("/")
        if len(parts) > 2 and parts[1] != run_id:
            by_run.setdefault(parts[1], []).append(item.key)
    removed = 0
    for other, keys in by_run.items():
        run = instance.get_run_by_id(other)
        if run is not None and not run.is_finished:
            continue  # a live run's staging, maybe a concurrent ingestion of other days
        for key in keys:
            lake.delete(key)
        removed += len(keys)
    return removed
