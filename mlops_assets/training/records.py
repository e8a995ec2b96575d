"""The lake records the training assets pass along: `models/<name>.json`, one per asset, last writer wins.

They go through lib/records, so each names the Dagster run that wrote it: a reader checks (lineage.py) that
the record it read is the one the upstream materialization it consumes wrote, and says in its metadata
which record that was. The chain works the same against a local folder or S3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dagster as dg

from mlops_assets.lib.lineage import Resolved, upstream_training_set
from mlops_assets.lib.records import Record, read_record, write_record
from mlops_assets.training.chain import CHAIN

if TYPE_CHECKING:
    from mlops_assets.resources.storage import ObjectStore

RECORDS = {key: f"models/{key.path[-1]}.json" for key in CHAIN}


def write_training_record(
    lake: ObjectStore, key: dg.AssetKey, body: dict[str, Any], context: dg.AssetExecutionContext
) -> Record:
    return write_record(lake, RECORDS[key], body, context)


def read_training_record(lake: ObjectStore, key: dg.AssetKey) -> Record:
    if not lake.exists(RECORDS[key]):
        raise dg.Failure(f"{lake.uri(RECORDS[key])} does not exist: materialize {key.to_user_string()} first")
    return read_record(lake, RECORDS[key])


def consumed(
    context: dg.AssetExecutionContext, lake: ObjectStore, key: dg.AssetKey
) -> tuple[Record, Resolved]:
    """The lake record of upstream `key` and the training set its materialization recorded."""
    record = read_training_record(lake, key)
    return record, upstream_training_set(context, key, record, lake.uri(RECORDS[key]))
