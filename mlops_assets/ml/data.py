"""The training set's columns and its temporal split."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mlops_assets.lib.calendar import LOCAL_TZ_NAME as LOCAL_TZ

LABEL = "label_late"
TIMESTAMP = "event_timestamp"
# Entity columns the model reads as categories (route is carrier-free and too sparse per day to help).
ENTITY_CATEGORIES = ("carrier", "origin", "dest")
# Features that are codes rather than quantities.
CODED_FEATURES = ("flight_schedule__sched_dep_hour_local", "flight_schedule__day_of_week")


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The feature service's columns, `<view>__<feature>`, in the training set's order."""
    return [c for c in frame.columns if "__" in c]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in (*ENTITY_CATEGORIES, *CODED_FEATURES) if c in frame.columns]


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    coded = set(CODED_FEATURES)
    return [c for c in feature_columns(frame) if c not in coded]


def model_input_columns(frame: pd.DataFrame) -> list[str]:
    """What a model is given to predict: categorical and numeric inputs (no label, no timestamp)."""
    return [*categorical_columns(frame), *numeric_columns(frame)]


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame
    holdout: pd.DataFrame

    def describe(self) -> dict[str, str | int]:
        def span(frame: pd.DataFrame) -> str:
            days = local_days(frame)
            return f"{days.min()}..{days.max()}" if len(frame) else "empty"

        return {
            "train_rows": len(self.train),
            "valid_rows": len(self.valid),
            "holdout_rows": len(self.holdout),
            "train_days": span(self.train),
            "valid_days": span(self.valid),
            "holdout_days": span(self.holdout),
        }


def local_days(frame: pd.DataFrame) -> pd.Series:
    """The New York day of each row's prediction time."""
    return pd.to_datetime(frame[TIMESTAMP], utc=True).dt.tz_convert(LOCAL_TZ).dt.date


def temporal_split(frame: pd.DataFrame, holdout_days: int, valid_days: int) -> Split:
    """Train on the earliest days, validate (early stopping, tuning) on the next `valid_days`, hold out
    the last `holdout_days`: no row of a later part is older than a row of an earlier part."""
    days = local_days(frame)
    unique = sorted(days.unique())
    if len(unique) < holdout_days + valid_days + 1:
        raise ValueError(
            f"the training set spans {len(unique)} day(s); a split needs more than "
            f"holdout_days={holdout_days} + valid_days={valid_days}"
        )
    holdout_start = unique[-holdout_days]
    valid_start = unique[-holdout_days - valid_days]
    ordered = frame.sort_values([TIMESTAMP, "flight_id"]).reset_index(drop=True)
    days = local_days(ordered)
    return Split(
        train=ordered[days < valid_start].reset_index(drop=True),
        valid=ordered[(days >= valid_start) & (days < holdout_start)].reset_index(drop=True),
        holdout=ordered[days >= holdout_start].reset_index(drop=True),
    )
