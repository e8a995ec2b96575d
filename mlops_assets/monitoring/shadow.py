"""Shadow comparison: the champion and the challenger on the same flights of a day, once outcomes exist.

The rows come from one of two places, both written with the two models' probabilities side by side:
- `batch`: `predictions/batch/{day}.parquet` of `predictions/batch_predictions` run with `shadow: true`
  (backfills, or every day);
- `online`: the service's prediction log (`mlops serve --shadow`), `predictions/online/*/*.parquet`, the
  rows whose flight departs on the day (`local_day`); a flight asked more than once counts once, its
  latest request. Every file of the log is read: the log is partitioned by request day, and a request
  may ask about any departure day.

Both models are judged with the evaluation's own metrics (`ml/metrics.py`) on the same labelled rows,
so a day's difference is the models', not the sample's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg

from mlops_assets.resources.storage import ObjectStore
from mlops_assets.serving.batch import CHALLENGER_PROBABILITY, CHALLENGER_VERSION, predictions_key
from mlops_assets.serving.prediction_log import DAY_COLUMN, PREFIX, REQUESTED_AT

COMPARED_METRICS = ("roc_auc", "log_loss", "brier", "ece")
ROW_COLUMNS = ["flight_id", "probability_late", "model_version", CHALLENGER_PROBABILITY, CHALLENGER_VERSION]


def batch_rows(lake: ObjectStore, day: dt.date):
    """The day's batch predictions that the challenger scored too (none when it ran without shadow)."""
    import pandas as pd

    key = predictions_key(day)
    if not lake.exists(key):
        raise dg.Failure(f"{lake.uri(key)} does not exist: materialize batch_predictions for {day}")
    frame = lake.read_parquet(key)
    if CHALLENGER_PROBABILITY not in frame:
        return pd.DataFrame(columns=ROW_COLUMNS)
    return frame.loc[frame[CHALLENGER_PROBABILITY].notna(), ROW_COLUMNS]


def online_rows(lake: ObjectStore, day: dt.date):
    """The prediction log's rows of flights departing on `day` with a challenger score; the latest request
    of each flight."""
    import pandas as pd

    wanted = [*ROW_COLUMNS, DAY_COLUMN, REQUESTED_AT]
    parts = []
    for stored in lake.list_objects(f"{PREFIX}/"):
        if not stored.key.endswith(".parquet"):
            continue
        frame = lake.read_parquet(stored.key)
        if CHALLENGER_PROBABILITY not in frame:
            continue
        frame = frame.loc[(frame[DAY_COLUMN] == day.isoformat()) & frame[CHALLENGER_PROBABILITY].notna()]
        parts.append(frame[wanted])
    if not parts:
        return pd.DataFrame(columns=ROW_COLUMNS)
    rows = pd.concat(parts, ignore_index=True).sort_values(REQUESTED_AT, kind="stable")
    return rows.drop_duplicates("flight_id", keep="last")[ROW_COLUMNS].reset_index(drop=True)


def compare_day(rows, labels, day: dt.date, source: str) -> dict[str, Any]:
    """The day's record: both models' metrics on the labelled rows both scored, and their differences
    (challenger minus champion). Rows of the day's most frequent version pair only: after a promotion
    the online log holds two pairs, and evidence is about one pair."""
    from mlops_assets.ml.metrics import classification_metrics

    record: dict[str, Any] = {"day": day.isoformat(), "source": source, "compared": False}
    frame = rows.merge(labels, on="flight_id", how="inner", validate="one_to_one")
    if frame.empty:
        reason = "no challenger scores" if rows.empty else "no labelled flight among the shadow-scored"
        return {**record, "reason": reason, "rows": 0}
    pairs = frame.groupby(["model_version", CHALLENGER_VERSION]).size().sort_values(ascending=False)
    champion_version, challenger_version = (str(v) for v in pairs.index[0])
    frame = frame[(frame["model_version"].astype(str) == champion_version)]
    frame = frame[frame[CHALLENGER_VERSION].astype(str) == challenger_version]
    labels_01 = frame["label_late"].astype(int)
    champion = classification_metrics(labels_01, frame["probability_late"])
    challenger = classification_metrics(labels_01, frame[CHALLENGER_PROBABILITY])
    return {
        **record,
        "compared": True,
        "reason": None,
        "rows": len(frame),
        "champion_version": champion_version,
        "challenger_version": challenger_version,
        "champion": champion,
        "challenger": challenger,
        "delta": {name: challenger[name] - champion[name] for name in COMPARED_METRICS},
    }


def comparison_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """One day's figures, for that day's materialization (the UI charts each over the days)."""
    metadata: dict[str, Any] = {
        "compared": record["compared"],
        "source": record["source"],
        "dagster/row_count": dg.MetadataValue.int(record["rows"]),
    }
    if not record["compared"]:
        return {**metadata, "reason": record["reason"]}
    metadata["champion_version"] = record["champion_version"]
    metadata["challenger_version"] = record["challenger_version"]
    for name in COMPARED_METRICS:
        for side in ("champion", "challenger", "delta"):
            metadata[f"{side}/{name}"] = dg.MetadataValue.float(round(record[side][name], 6))
    return metadata
