"""The training set: labelled flights joined point-in-time with a feature service's features (Feast), its
content hash and content-addressed key, and its identity.

The identity (where the set lies in the lake, its content hash and its window): `features/training_set`
writes it into its materialization metadata; every training asset reads it from the materialization it
consumes and writes it into its own, so the Dagster event log says which set each model learned from,
was tuned and evaluated on, and was registered with. The features stage writes it, the training stage
reads it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_assets.resources.feature_store import FULL_FEATURE_NAMES, FeastResource
from mlops_assets.resources.warehouse import Warehouse, as_warehouse

ENTITY_COLUMNS = ["flight_id", "carrier", "origin", "dest", "route"]
TRAINING_SET_POINTER = "features/training_set/latest.json"
ENTITY_SOURCE_COLUMNS = ["flight_id", "carrier", "origin", "dest", "prediction_time_utc", "flight_date"]


def entity_frame(warehouse: Warehouse | Path, start: str, end: str):
    """Labelled flights of [start, end] from fct_flights: join keys, event_timestamp, label_late.

    Read through the warehouse resource (a path: the local DuckDB file), so DuckDB and PostgreSQL give
    the same frame; the route and the order are made here, not in dialect-specific SQL."""
    import pyarrow.compute as pc

    source = as_warehouse(warehouse)
    table = source.read_table(
        "marts.fct_flights",
        [*ENTITY_SOURCE_COLUMNS, "label_late"],
        "flight_date",
        dt.date.fromisoformat(start),
        dt.date.fromisoformat(end),
    )
    # Filtered in Arrow, so label_late stays an integer column (pandas would make it float with nulls).
    frame = table.filter(pc.is_valid(table["label_late"])).to_pandas()
    frame = frame.rename(columns={"prediction_time_utc": "event_timestamp"})
    frame.insert(4, "route", frame["origin"] + "-" + frame["dest"])
    return frame.sort_values(["event_timestamp", "flight_id"]).reset_index(drop=True)


def canonical_hash(frame) -> str:
    """sha256 of the frame sorted by flight_id, written as Parquet with fixed settings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame.sort_values("flight_id").reset_index(drop=True), preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(None), buffer, compression="zstd")
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def build_training_set(feast: FeastResource, entities, feature_service: str):
    """Point-in-time join of labelled flights with the service's features, in a stable column order."""
    import pandas as pd

    frame = feast.historical_features(
        entities.drop(columns=["flight_date"], errors="ignore"), feature_service
    )
    projections = feast.feature_service(feature_service).feature_view_projections
    sep = "__" if FULL_FEATURE_NAMES else None
    refs = [f"{p.name}{sep}{f.name}" if sep else f.name for p in projections for f in p.features]
    base = [c for c in [*ENTITY_COLUMNS, "event_timestamp", "label_late"] if c in frame.columns]
    frame = frame[base + refs].sort_values(["event_timestamp", "flight_id"]).reset_index(drop=True)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame, refs


METADATA_PREFIX = "training_set/"
METADATA_FIELDS = ("key", "sha256", "window", "feature_service")


@dataclass(frozen=True)
class TrainingSetIdentity:
    key: str
    sha256: str
    window: tuple[str, str]
    feature_service: str

    @classmethod
    def from_record(cls, info: Mapping[str, Any]) -> TrainingSetIdentity:
        """From the JSON form (`latest.json`, a training record's `training_set`)."""
        first, last = info["window"]
        return cls(
            key=info["key"],
            sha256=info["content_sha256"],
            window=(first, last),
            feature_service=info["feature_service"],
        )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> TrainingSetIdentity | None:
        """From a materialization's metadata (MetadataValue or plain values); None when it has none, as
        in materializations made before identities were recorded."""
        values = {k: getattr(v, "value", v) for k, v in metadata.items()}
        if not all(f"{METADATA_PREFIX}{name}" in values for name in METADATA_FIELDS):
            return None
        first, last = str(values[f"{METADATA_PREFIX}window"]).split("..")
        return cls(
            key=str(values[f"{METADATA_PREFIX}key"]),
            sha256=str(values[f"{METADATA_PREFIX}sha256"]),
            window=(first, last),
            feature_service=str(values[f"{METADATA_PREFIX}feature_service"]),
        )

    def metadata(self) -> dict[str, str]:
        return {
            f"{METADATA_PREFIX}key": self.key,
            f"{METADATA_PREFIX}sha256": self.sha256,
            f"{METADATA_PREFIX}window": "..".join(self.window),
            f"{METADATA_PREFIX}feature_service": self.feature_service,
        }

    def record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "content_sha256": self.sha256,
            "window": list(self.window),
            "feature_service": self.feature_service,
        }

    def describe(self) -> str:
        return f"{self.key} (window {'..'.join(self.window)}, sha256 {self.sha256})"


def content_addressed_key(start: str, end: str, sha256: str) -> str:
    """The lake key of a training set: its window for people, its hash so that a key is written once and
    never names other content (a drift report still finds the exact set its champion learned from)."""
    return f"features/training_set/{start}_{end}_{sha256[:16]}.parquet"
