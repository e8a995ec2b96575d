"""The training set the stage works on (the one features/training_set last wrote) and its split."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import dagster as dg

from mlops_assets.defs.features.feast_assets import TRAINING_SET_POINTER
from mlops_assets.lib.storage import ObjectStore


@dataclass
class TrainingData:
    info: dict[str, Any]  # key, window, feature_service, features, rows, content_sha256
    split: Any  # mlops_assets.ml.data.Split
    categorical: list[str]
    numeric: list[str]

    @property
    def inputs(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    def lineage_tags(self) -> dict[str, str]:
        """MLflow tags that tie a model to the exact data it learned from."""
        return {
            "training_set.key": self.info["key"],
            "training_set.sha256": self.info["content_sha256"],
            "training_window": "..".join(self.info["window"]),
            "feature_service": self.info["feature_service"],
            "split.train_days": str(self.split.describe()["train_days"]),
            "split.valid_days": str(self.split.describe()["valid_days"]),
            "split.holdout_days": str(self.split.describe()["holdout_days"]),
        }


def load_training_data(lake: ObjectStore, holdout_days: int, valid_days: int) -> TrainingData:
    from mlops_assets.ml.data import categorical_columns, numeric_columns, temporal_split

    if not lake.exists(TRAINING_SET_POINTER):
        raise dg.Failure(
            f"no training set: {lake.uri(TRAINING_SET_POINTER)} does not exist; "
            "materialize features/training_set first"
        )
    info = json.loads(lake.read_bytes(TRAINING_SET_POINTER))
    frame = lake.read_parquet(info["key"])
    try:
        split = temporal_split(frame, holdout_days=holdout_days, valid_days=valid_days)
    except ValueError as error:
        raise dg.Failure(f"{lake.uri(info['key'])}: {error}") from None
    return TrainingData(
        info=info, split=split, categorical=categorical_columns(frame), numeric=numeric_columns(frame)
    )


def model_input_frame(frame, categorical: list[str], numeric: list[str]):
    """The columns a model is given, typed as its signature says: categories as strings, numbers as
    float64 (a missing value is NaN/None, never a sentinel)."""
    import pandas as pd

    from mlops_assets.ml.preprocessing import spell_category

    out = pd.DataFrame(index=frame.index)
    for column in categorical:
        out[column] = frame[column].astype("object").where(frame[column].notna(), None)
        out[column] = out[column].map(spell_category, na_action="ignore")
    for column in numeric:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return out
