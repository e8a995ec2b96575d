"""Which training set a step of the training graph works on, read from what Dagster recorded.

A run of the training graph has one training set. The first step of the run that resolves it pins it:
  1. the set recorded by the earliest materialization of this run among features/training_set and the
     training assets (`features/training_set` itself when the run builds it, as `retrain_model` does);
  2. else the latest materialization of features/training_set in the instance;
  3. else `features/training_set/latest.json`, for an instance that holds no materialization of it (an
     ephemeral instance, a set built by another instance); the step's metadata says so.
Every step then checks that the upstream materializations it consumes recorded that same set, and fails
before doing any work when one did not: a model is never trained with hyperparameters tuned on another
set, evaluated on another set's holdout, or registered with another set's figures.

The upstream's identity is the one in its materialization event (this run's, else the latest); the lake
record the step reads (`models/<name>.json`, which holds the hyperparameters or the model URI) must have
been written by that materialization's run (lib/records stamps each record with it) and name the same set,
so a record replaced by another run is refused too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.features.training_set import TRAINING_SET_POINTER, TrainingSetIdentity
from mlops_assets.lib.keys import TRAINING_SET
from mlops_assets.resources.storage import ObjectStore
from mlops_assets.training.data import newest_training_set

if TYPE_CHECKING:
    from mlops_assets.lib.records import Record

SOURCE = "training_set/source"


@dataclass(frozen=True)
class Resolved:
    identity: TrainingSetIdentity
    source: str  # where it was read: for the step's metadata and the failure messages

    def metadata(self) -> dict[str, str]:
        return {**self.identity.metadata(), SOURCE: self.source}


def _run_materializations(context: dg.AssetExecutionContext) -> list[dg.EventLogEntry]:
    connection = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    return [record.event_log_entry for record in connection.records]


def _identity(entry: dg.EventLogEntry) -> TrainingSetIdentity | None:
    materialization = entry.asset_materialization
    return TrainingSetIdentity.from_metadata(materialization.metadata) if materialization else None


def _consumed(context: dg.AssetExecutionContext, key: dg.AssetKey) -> dg.EventLogEntry | None:
    """The materialization of `key` this step consumes: this run's, else the latest in the instance."""
    own = [e for e in _run_materializations(context) if e.asset_materialization.asset_key == key]
    return own[-1] if own else context.instance.get_latest_materialization_event(key)


def _run_label(entry: dg.EventLogEntry, context: dg.AssetExecutionContext) -> str:
    return "this run" if entry.run_id == context.run.run_id else f"run {entry.run_id}"


def pinned_in_run(context: dg.AssetExecutionContext, chain: Iterable[dg.AssetKey]) -> Resolved | None:
    """The set recorded by the earliest materialization of this run among the training set and `chain`."""
    members = {TRAINING_SET, *chain}
    for entry in _run_materializations(context):
        key = entry.asset_materialization.asset_key
        if key in members and (identity := _identity(entry)) is not None:
            return Resolved(identity, f"pinned by {key.to_user_string()} earlier in this run")
    return None


def run_training_set(
    context: dg.AssetExecutionContext, lake: ObjectStore, chain: Iterable[dg.AssetKey]
) -> Resolved:
    """The training set of this run (see the module's docstring for the order)."""
    pinned = pinned_in_run(context, chain)
    if pinned is not None:
        return pinned
    latest = context.instance.get_latest_materialization_event(TRAINING_SET)
    why = "the instance holds no materialization of features/training_set"
    if latest is not None:
        identity = _identity(latest)
        if identity is not None:
            source = f"latest materialization of features/training_set (run {latest.run_id})"
            return Resolved(identity, source)
        why = "the latest materialization of features/training_set records no identity"
        context.log.warning(f"{why} (made before identities were recorded); using {TRAINING_SET_POINTER}")
    return Resolved(newest_training_set(lake, why), f"{TRAINING_SET_POINTER} ({why})")


def upstream_training_set(
    context: dg.AssetExecutionContext, key: dg.AssetKey, record: Record, record_uri: str
) -> Resolved:
    """The set the upstream `key` worked on: its materialization's identity, checked against the lake
    `record` this step reads (written by that materialization's run, naming the same set); the record
    alone when the instance holds no materialization of `key`."""
    from_record = TrainingSetIdentity.from_record(record.body["training_set"])
    entry = _consumed(context, key)
    if entry is not None and record.run_id != entry.run_id:
        written_by = f"run {record.run_id}" if record.run_id else "no Dagster run (an unstamped record)"
        raise dg.Failure(
            f"{record_uri} was written by {written_by}, but the materialization of {key.to_user_string()} "
            f"this step consumes was made by run {entry.run_id} ({_run_label(entry, context)}): another "
            f"run replaced the record. Materialize {key.to_user_string()} again.",
            metadata={"record/run_id": str(record.run_id), "materialization/run_id": entry.run_id},
        )
    identity = _identity(entry) if entry is not None else None
    if identity is None:
        return Resolved(from_record, f"{record_uri} (the instance holds no materialization of it)")
    run = _run_label(entry, context)
    if identity != from_record:
        raise dg.Failure(
            f"{record_uri} names training set {from_record.describe()}, but the materialization of "
            f"{key.to_user_string()} this step consumes ({run}) recorded {identity.describe()}: another "
            f"run replaced the record. Materialize {key.to_user_string()} again.",
            metadata={"record": from_record.sha256, "materialization": identity.sha256},
        )
    return Resolved(identity, f"materialization of {key.to_user_string()} ({run})")


def require_same(asset: dg.AssetKey, expected: Resolved, upstreams: Mapping[dg.AssetKey, Resolved]) -> None:
    """Fail (blocking everything downstream) when an upstream worked on another training set."""
    for key, found in upstreams.items():
        if found.identity == expected.identity:
            continue
        raise dg.Failure(
            f"{asset.to_user_string()}: {key.to_user_string()} was made from training set "
            f"{found.identity.describe()} [{found.source}], but this run's training set is "
            f"{expected.identity.describe()} [{expected.source}]. A model is tuned, trained, evaluated and "
            f"registered on one training set only. Materialize {key.to_user_string()} and what follows "
            f"it again (dagster asset materialize --select '{key.to_user_string()}*'), or the whole chain "
            "with features/training_set (the retrain_model job), so that one run fixes one set.",
            metadata={
                f"{key.to_user_string()}/sha256": found.identity.sha256,
                "run_training_set/sha256": expected.identity.sha256,
                f"{key.to_user_string()}/key": found.identity.key,
                "run_training_set/key": expected.identity.key,
            },
        )
