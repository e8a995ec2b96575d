"""The identity of a training set: where it lies in the lake, its content hash and its window.

`features/training_set` writes it into its materialization metadata; every training asset reads it from
the materialization it consumes and writes it into its own, so the Dagster event log says which set each
model learned from, was tuned and evaluated on, and was registered with. Stage-neutral: the features stage
writes it, the training stage reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "training_set/"
FIELDS = ("key", "sha256", "window", "feature_service")


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
        if not all(f"{PREFIX}{name}" in values for name in FIELDS):
            return None
        first, last = str(values[f"{PREFIX}window"]).split("..")
        return cls(
            key=str(values[f"{PREFIX}key"]),
            sha256=str(values[f"{PREFIX}sha256"]),
            window=(first, last),
            feature_service=str(values[f"{PREFIX}feature_service"]),
        )

    def metadata(self) -> dict[str, str]:
        return {
            f"{PREFIX}key": self.key,
            f"{PREFIX}sha256": self.sha256,
            f"{PREFIX}window": "..".join(self.window),
            f"{PREFIX}feature_service": self.feature_service,
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
