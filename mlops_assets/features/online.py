"""The online store's windows: the UTC span of a range of New York days, and the entities each day's
materialization writes (counted from the feature files, for the partition's metadata)."""

import datetime as dt
from pathlib import Path

from mlops_assets.features.day_files import day_of_file
from mlops_assets.lib.calendar import LOCAL_TZ
from mlops_assets.resources.feature_store import FeastResource

# A flight's schedule row is stamped 24 h before its departure: partition D also (re)writes the rows
# stamped on D-1, so the flights of D are online even when D's file lands after D-1 was materialized.
MATERIALIZE_LOOKBACK = dt.timedelta(days=1)


def local_days_utc_span(first: str, last: str) -> tuple[dt.datetime, dt.datetime]:
    """[midnight of local day `first`, midnight after local day `last`) in UTC."""
    start = dt.datetime.combine(dt.date.fromisoformat(first), dt.time(), LOCAL_TZ)
    end = dt.datetime.combine(dt.date.fromisoformat(last) + dt.timedelta(days=1), dt.time(), LOCAL_TZ)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def view_rows(feast: FeastResource, start: dt.datetime, end: dt.datetime):
    """view -> its rows (join key, event_timestamp) with event_timestamp in [start, end], sorted by
    time, read from the local feature files ({} for a remote source: no counts rather than a download)."""
    import pandas as pd
    import pyarrow.dataset as ds

    root = feast.feature_source_root()
    if "://" in root:
        return {}
    rows = {}
    first, last = start.date() - dt.timedelta(days=2), end.date() + dt.timedelta(days=2)
    for view in feast.repo_objects().feature_views:
        folder = Path(root) / view.name
        files = [
            str(p)
            for p in sorted(folder.glob("*.parquet"))
            if day_of_file(p) is None or first <= day_of_file(p) <= last
        ]
        key = view.join_keys[0]
        if not files:
            rows[view.name] = pd.DataFrame({"key": [], "ts": pd.to_datetime([], utc=True)})
            continue
        table = ds.dataset(files, format="parquet").to_table(
            columns=[key, "event_timestamp"],
            filter=(ds.field("event_timestamp") >= start) & (ds.field("event_timestamp") <= end),
        )
        stamps = pd.to_datetime(table.column("event_timestamp").to_pandas(), utc=True)
        frame = pd.DataFrame({"key": table.column(key).to_pandas(), "ts": stamps})
        rows[view.name] = frame.sort_values("ts", ignore_index=True)
    return rows


def entities_by_day(feast: FeastResource, days: list[str]) -> dict[str, dict[str, int]]:
    """day -> view -> distinct entities with a row in the day's own materialization window (its UTC
    span and the day before), as a run of that day alone would count them: the files are read once
    for the whole range."""
    windows = {}
    for day in days:
        span_start, span_end = local_days_utc_span(day, day)
        windows[day] = (span_start - MATERIALIZE_LOOKBACK, span_end - dt.timedelta(microseconds=1))
    start, end = min(w[0] for w in windows.values()), max(w[1] for w in windows.values())
    rows = view_rows(feast, start, end)
    counts: dict[str, dict[str, int]] = {day: {} for day in days}
    for view, frame in rows.items():
        stamps = frame["ts"]
        for day, (low, high) in windows.items():
            begin, stop = stamps.searchsorted(low), stamps.searchsorted(high, side="right")
            counts[day][view] = int(frame["key"].iloc[begin:stop].nunique())
    return counts
