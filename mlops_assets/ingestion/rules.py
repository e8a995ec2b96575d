"""Type every cell and apply the contract's row rules; failing rows are quarantined, never dropped.

Each failing row keeps its original text, its file and line, and one reason per broken rule, each
reason naming the column. Rows in = rows accepted + rows quarantined, always.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_assets.ingestion.contracts import (
    NULL_TOKENS,
    PANDAS_DTYPES,
    Column,
    TableContract,
)
from mlops_assets.ingestion.parsing import RawTable
from mlops_assets.lib.calendar import LOCAL_TZ_NAME

PARTITION_COLUMN = "_partition"
# _raw_line: the landed text of a line that is not a well-formed row (its cells are then all null).
QUARANTINE_COLUMNS = ("_source_file", "_source_line", PARTITION_COLUMN, "_reason", "_raw_line")


@dataclass(frozen=True)
class ValidatedTable:
    # Typed, the contract's columns plus _partition (the partition key each row is stored under).
    accepted: pd.DataFrame
    # The rows' original text + _source_file, _source_line, _partition, _reason.
    quarantined: pd.DataFrame

    @property
    def rows_in(self) -> int:
        return len(self.accepted) + len(self.quarantined)


class _Reasons:
    """Collects reasons per row; failures are rare, so only failing rows allocate a list."""

    def __init__(self, size: int) -> None:
        self.by_row: dict[int, list[str]] = {}
        self.size = size

    def add(self, mask: np.ndarray, message) -> None:
        for index in np.flatnonzero(mask):
            self.by_row.setdefault(int(index), []).append(message(int(index)))

    def failed(self) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        mask[list(self.by_row)] = True
        return mask


def validate_rows(
    batches: list[tuple[RawTable, dt.date | None]],
    contract: TableContract,
    reference_sets: dict[str, frozenset[str]] | None = None,
) -> ValidatedTable:
    """Validate the rows of one or more files at once (one vectorized pass for a whole backfill).

    Each batch is a file and the partition date its rows must fall in (None for reference tables).
    """
    rows = [row for raw, _ in batches for row in raw.rows]
    text = pd.DataFrame(rows, columns=list(contract.column_names), dtype=object)
    sources = np.concatenate([np.full(len(raw.rows), raw.source, dtype=object) for raw, _ in batches] or [[]])
    lines = np.concatenate([np.asarray(raw.lines, dtype="int64") for raw, _ in batches] or [[]]).astype(
        "int64"
    )
    partitions = pd.Series(
        np.concatenate(
            [
                np.full(len(raw.rows), None if day is None else day.isoformat(), dtype=object)
                for raw, day in batches
            ]
            or [[]]
        ),
        dtype="string",
    )
    reasons = _Reasons(len(text))
    typed = {}
    for column in contract.columns:
        typed[column.name] = _typed_column(text[column.name], column, reasons)
    frame = pd.DataFrame(typed)
    for column in contract.columns:
        _apply_column_rules(frame[column.name], column, reasons, reference_sets or {})
    if contract.partition_date_columns and partitions.notna().any():
        _apply_partition_rules(frame, contract, partitions, reasons)
    _apply_uniqueness(frame, contract, sources, lines, reasons)

    failed = reasons.failed()
    quarantined = text.loc[failed].copy()
    quarantined["_source_file"] = sources[failed]
    quarantined["_source_line"] = lines[failed]
    quarantined[PARTITION_COLUMN] = partitions[failed].to_numpy()
    quarantined["_reason"] = ["; ".join(reasons.by_row[i]) for i in np.flatnonzero(failed)]
    quarantined["_raw_line"] = None
    frame[PARTITION_COLUMN] = partitions
    accepted = frame.loc[~failed].reset_index(drop=True)
    quarantined = _with_rejected_lines(quarantined, batches, contract)
    quarantined = quarantined.reset_index(drop=True).astype(
        {c: "string" for c in (*contract.column_names, *QUARANTINE_COLUMNS) if c != "_source_line"}
    )
    return ValidatedTable(accepted=accepted, quarantined=quarantined)


def _with_rejected_lines(
    quarantined: pd.DataFrame, batches: list[tuple[RawTable, dt.date | None]], contract: TableContract
) -> pd.DataFrame:
    """Add the lines the parser set aside (wrong field count, ...), in file and line order."""
    rejected = [
        {
            "_source_file": raw.source,
            "_source_line": row.line,
            PARTITION_COLUMN: None if day is None else day.isoformat(),
            "_reason": row.reason,
            "_raw_line": row.text,
        }
        for raw, day in batches
        for row in raw.rejected
    ]
    if not rejected:
        return quarantined
    files = {raw.source: position for position, (raw, _) in enumerate(batches)}
    extra = pd.DataFrame(rejected).reindex(columns=quarantined.columns)
    merged = pd.concat([quarantined.astype(object), extra.astype(object)], ignore_index=True)
    order = merged["_source_file"].map(files).astype("int64") * (1 << 32) + merged["_source_line"].astype(
        "int64"
    )
    merged = merged.iloc[np.argsort(order.to_numpy(), kind="stable")]
    return merged.astype({"_source_line": "int64"})


_ZONED = r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
_INTEGER = r"^[-+]?[0-9]+(\.0*)?$"
_NUMBER = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"


def _typed_column(values: pd.Series, column: Column, reasons: _Reasons) -> pd.Series:
    """Convert one text column with Arrow kernels; a cell that does not convert is a row reason."""
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(pa.array(values.to_numpy(), type=pa.string()))
    is_null = pc.is_in(trimmed, value_set=pa.array(sorted(NULL_TOKENS))).to_numpy(zero_copy_only=False)
    name = column.name
    if column.dtype == "str":
        return pd.Series(pc.if_else(pa.array(is_null), None, trimmed).to_pandas(), dtype="string")
    if column.dtype == "timestamp":
        # A timestamp without a zone is ambiguous (local or UTC?): it must say which.
        zoned = pc.fill_null(pc.match_substring_regex(trimmed, _ZONED), False).to_numpy(zero_copy_only=False)
        text = pd.Series(trimmed.to_numpy(zero_copy_only=False)).mask(is_null | ~zoned)
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy() & ~is_null
        reasons.add(
            bad,
            lambda i: (
                f"column {name}: {values.iat[i]!r} is not an ISO-8601 timestamp with a zone (…T10:00:00Z)"
            ),
        )
        return parsed.astype(PANDAS_DTYPES["timestamp"])
    kind = "an integer" if column.dtype == "int" else "a number"
    valid = pc.match_substring_regex(trimmed, _INTEGER if column.dtype == "int" else _NUMBER)
    valid_np = valid.to_numpy(zero_copy_only=False) & ~is_null
    reasons.add(~valid_np & ~is_null, lambda i: f"column {name}: {values.iat[i]!r} is not {kind}")
    numbers = pc.cast(pc.if_else(pa.array(valid_np), trimmed, None), pa.float64()).to_pandas()
    if column.dtype == "int":
        # Beyond 2**53 a float no longer holds every integer exactly; no field of ours gets near it.
        huge = (numbers.abs() > 2**53).to_numpy()
        reasons.add(huge, lambda i: f"column {name}: {values.iat[i]!r} is too large for an integer")
        numbers = numbers.mask(huge)
    return numbers.astype(PANDAS_DTYPES[column.dtype])


def _apply_column_rules(
    series: pd.Series, column: Column, reasons: _Reasons, reference_sets: dict[str, frozenset[str]]
) -> None:
    name = column.name
    present = series.notna().to_numpy()
    if column.required:
        reasons.add(~present, lambda i: f"column {name}: required value is missing")
    if column.min is not None or column.max is not None:
        low = -np.inf if column.min is None else column.min
        high = np.inf if column.max is None else column.max
        numeric = series.astype("float64").to_numpy()
        outside = present & ((numeric < low) | (numeric > high))
        reasons.add(
            outside, lambda i: f"column {name}: {series.iat[i]} is outside [{_fmt(low)}, {_fmt(high)}]"
        )
    allowed = column.allowed
    label = ", ".join(sorted(allowed)) if allowed else ""
    if column.allowed_from is not None:
        if column.allowed_from not in reference_sets:
            raise KeyError(f"the {name} rule needs the reference set {column.allowed_from!r}")
        allowed = reference_sets[column.allowed_from]
        label = f"the known {column.allowed_from}"
    if allowed is not None:
        unknown = present & ~series.isin(allowed).to_numpy()
        reasons.add(unknown, lambda i: f"column {name}: {series.iat[i]!r} is not one of {label}")
    if column.pattern is not None:
        mismatch = present & ~_matches(series, column.pattern)
        reasons.add(mismatch, lambda i: f"column {name}: {series.iat[i]!r} does not match {column.pattern}")


def _apply_partition_rules(
    frame: pd.DataFrame, contract: TableContract, partitions: pd.Series, reasons: _Reasons
) -> None:
    year, month, day = contract.partition_date_columns  # type: ignore[misc]
    expected = pd.to_datetime(partitions).to_numpy()
    dated = calendar_dates(frame, contract)
    # Rows missing a part were already given a reason by the required rule; a complete triple that
    # names no real day (2013-02-30) gets one here.
    complete = frame[[year, month, day]].notna().all(axis=1).to_numpy()
    impossible = complete & dated.isna().to_numpy()
    reasons.add(
        impossible,
        lambda i: (
            f"columns {year}/{month}/{day}: {frame[year].iat[i]}-{frame[month].iat[i]}-{frame[day].iat[i]} "
            "is not a calendar date"
        ),
    )
    outside = dated.notna().to_numpy() & (dated != expected).to_numpy()
    reasons.add(
        outside,
        lambda i: (
            f"columns {year}/{month}/{day}: {dated.iat[i].date()} is outside partition {partitions.iat[i]}"
        ),
    )
    stamp_column = contract.partition_timestamp
    if stamp_column:
        stamps = frame[stamp_column]
        local_dates = stamps.dt.tz_convert(LOCAL_TZ_NAME).dt.normalize().dt.tz_localize(None)
        off_day = stamps.notna().to_numpy() & (local_dates != expected).to_numpy()
        reasons.add(
            off_day,
            lambda i: (
                f"column {stamp_column}: {stamps.iat[i].isoformat()} is "
                f"{local_dates.iat[i].date()} in New York, outside partition {partitions.iat[i]}"
            ),
        )


def calendar_dates(frame: pd.DataFrame, contract: TableContract) -> pd.Series:
    """The day named by the calendar columns; NaT where a part is missing or the day does not exist."""
    columns = list(contract.partition_date_columns)  # type: ignore[arg-type]
    complete = frame[columns].notna().all(axis=1)
    dated = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    if complete.any():
        parts = frame.loc[complete, columns].astype("int64")
        parts.columns = ["year", "month", "day"]
        dated.loc[complete] = pd.to_datetime(parts, errors="coerce")
    return dated


def _apply_uniqueness(
    frame: pd.DataFrame, contract: TableContract, sources: np.ndarray, lines: np.ndarray, reasons: _Reasons
) -> None:
    # Only rows that are otherwise valid compete for a key: a broken first copy must not push a
    # good second copy into quarantine.
    candidates = ~reasons.failed()
    keys = frame.loc[candidates, list(contract.unique_key)]
    repeated = keys.duplicated(keep="first")
    if not repeated.any():
        return
    # Only rows whose key repeats need to know where the first copy was.
    involved = keys.duplicated(keep=False)
    first_seen: dict[tuple, str] = {}
    for index, key in zip(
        keys.index[involved.to_numpy()], keys.loc[involved].itertuples(index=False, name=None), strict=True
    ):
        first_seen.setdefault(key, f"{sources[index]} line {lines[index]}")
    mask = np.zeros(len(frame), dtype=bool)
    mask[repeated.index[repeated.to_numpy()]] = True
    key_label = ", ".join(contract.unique_key)
    key_values = frame[list(contract.unique_key)]
    reasons.add(
        mask,
        lambda i: (
            f"columns {key_label}: duplicate of {first_seen[tuple(key_values.iloc[i])]} "
            "(the key must be unique)"
        ),
    )


def _matches(series: pd.Series, pattern: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    anchored = pattern if pattern.startswith("^") else f"^(?:{pattern})$"
    matched = pc.match_substring_regex(pa.array(series, type=pa.string()), anchored)
    return pc.fill_null(matched, False).to_numpy(zero_copy_only=False)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
