"""The table of bad deliveries and re-deliveries (issue 12): each kind of bad input, one outcome each.

Every case lands one bad file (or link) in a copy of a state where the reference tables and the real
2013-01-02 of flights and weather are already accepted (materialized in a persistent instance), then
materializes the raw asset. A re-delivery replaces 2013-01-02 (or a reference table); a first delivery
lands 2013-01-03, which nothing accepted yet. Whatever the outcome:
- the landed file is unchanged, byte for byte;
- a refused delivery (file refused whole, link refused, checks failed, shrink guard) changes nothing a
  reader sees: the same Parquet bytes, the same quarantined rows, the same latest materialization;
  its error names the file (and line and column where there are some), and nothing is left in staging;
- an accepted one stores what it says: rows in = rows accepted + rows quarantined, per partition.

tests/test_bad_files.py holds the first-delivery cases of file- and row-level rejections in detail.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.ingestion.layout import lake_key, landing_key
from mlops_assets.ingestion.quarantine import refused_folder, rows_key, safe_version
from mlops_assets.ingestion.staging import STAGING_PREFIX
from mlops_assets.resources.storage import LocalObjectStore
from tests import s3_server
from tests.conftest import FIRST_DAYS, materialize_raw, started_run
from tests.test_bad_files import _join, _lines, drop_column, set_cells

s3_endpoint = s3_server.s3_endpoint
s3_bucket = s3_server.s3_bucket

DAY = "2013-01-02"  # accepted in the template: re-deliveries replace it
NEW_DAY = "2013-01-03"  # landed, never accepted: first deliveries
REFERENCE = ["raw/airlines", "raw/airports", "raw/planes"]
ONE_MB = 1_000_000


# --------------------------------------------------------------------------------------------------
# The state every case starts from, built once for the module and copied into each test.


@dataclass
class World:
    landing: LocalObjectStore
    lake: LocalObjectStore
    instance: dg.DagsterInstance
    root: Path


def _open(root: Path) -> World:
    (root / "dagster").mkdir(parents=True, exist_ok=True)
    return World(
        landing=LocalObjectStore(root=str(root / "landing")),
        lake=LocalObjectStore(root=str(root / "lake")),
        instance=dg.DagsterInstance.local_temp(tempdir=str(root / "dagster")),
        root=root,
    )


@pytest.fixture(scope="module")
def accepted_template(tmp_path_factory) -> Path:
    from mlops_assets.replay import replay

    root = tmp_path_factory.mktemp("accepted")
    world = _open(root)
    replay(world.landing, *FIRST_DAYS)
    with world.instance:
        assert materialize_raw(world.landing, world.lake, REFERENCE, instance=world.instance).success
        result = materialize_raw(
            world.landing,
            world.lake,
            ["raw/flights", "raw/weather"],
            partition_key=DAY,
            instance=world.instance,
        )
        assert result.success
    return root


@pytest.fixture
def world(accepted_template: Path, tmp_path: Path):
    shutil.copytree(accepted_template, tmp_path / "world", symlinks=True)
    opened = _open(tmp_path / "world")
    with opened.instance:
        yield opened


# --------------------------------------------------------------------------------------------------
# Ways to break a file: each takes the real landed bytes and returns what lands instead.


def every_row(data: bytes, **cells: str) -> bytes:
    for line in range(2, len(_lines(data)) + 1):
        data = set_cells(data, line, **cells)
    return data


def keep_share(data: bytes, share: float) -> bytes:
    lines = _lines(data)
    return _join(lines[: 1 + int((len(lines) - 1) * share)])


def header_only(data: bytes) -> bytes:
    return _lines(data)[0] + b"\n"


def insert_line(data: bytes, line: int, text: bytes) -> bytes:
    lines = _lines(data)
    return _join([*lines[: line - 1], text, *lines[line - 1 :]])


def replace_line(data: bytes, line: int, change: Callable[[bytes], bytes]) -> bytes:
    lines = _lines(data)
    lines[line - 1] = change(lines[line - 1])
    return _join(lines)


def swap_columns(data: bytes, first: str, second: str) -> bytes:
    lines = [line.split(b",") for line in _lines(data)]
    i, j = lines[0].index(first.encode()), lines[0].index(second.encode())
    for fields in lines:
        fields[i], fields[j] = fields[j], fields[i]
    return _join([b",".join(fields) for fields in lines])


def rename_header(data: bytes, old: str, new: str) -> bytes:
    lines = _lines(data)
    lines[0] = b",".join(new.encode() if f == old.encode() else f for f in lines[0].split(b","))
    return _join(lines)


def as_parquet(data: bytes) -> bytes:
    buffer = io.BytesIO()
    pd.read_csv(io.BytesIO(data)).to_parquet(buffer)
    return buffer.getvalue()


def as_zip(data: bytes, name: str = "export.csv") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def as_xlsx(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # the parts an XLSX opens with
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    return buffer.getvalue()


def as_json(data: bytes) -> bytes:
    return pd.read_csv(io.BytesIO(data)).to_json(orient="records").encode()


def as_json_lines(data: bytes) -> bytes:
    return pd.read_csv(io.BytesIO(data)).to_json(orient="records", lines=True).encode()


def add_column(data: bytes, name: str, value: str) -> bytes:
    lines = _lines(data)
    return _join([lines[0] + f",{name}".encode(), *(line + f",{value}".encode() for line in lines[1:])])


def crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def utf16(data: bytes) -> bytes:
    return data.decode().encode("utf-16")


def utf16_le(data: bytes) -> bytes:  # no byte-order mark
    return data.decode().encode("utf-16-le")


HTML = b"<html><body>502 Bad Gateway</body></html>\n"
# The first 40 characters of a tab-separated header, as the error names it.
TAB_HEADER = "year\tmonth\tday\tdep_time\tsched_dep_time\td"


def duplicate_line(data: bytes, line: int) -> bytes:
    return data + _lines(data)[line - 1] + b"\n"


def header_repeated_at(data: bytes, line: int) -> bytes:
    return insert_line(data, line, _lines(data)[0])


# --------------------------------------------------------------------------------------------------
# The table of cases.


@dataclass(frozen=True)
class Case:
    table: str  # flights, weather, airlines, airports, planes
    corrupt: Callable[[bytes], bytes] | None  # None: a link case (see _land_link)
    # accepted: stored, nothing quarantined; rows: stored, `quarantined` rows set aside;
    # whole: the file is refused whole; refused: readable, but the checks or the shrink guard refuse it;
    # link: the landed entry is a symbolic link, refused unread.
    outcome: str
    redelivery: bool = True  # over the accepted 2013-01-02 (reference tables: always)
    line: int | None = None  # the line (and column) the error names
    column: str | None = None
    says: str = ""  # a part of the problem or reason
    quarantined: int = 0
    config: dict = field(default_factory=dict)


# One line per kind: Case(table, corrupt, outcome, redelivery, line, column, says, quarantined, config).
# fmt: off
CASES: dict[str, Case] = {
    # -- not CSV text at all: refused whole, named as what it is ---------------------------------------
    "gzip-named-csv": Case("flights", gzip.compress, "whole", True, 1, "-", "gzip-compressed data"),
    "zip-archive": Case("weather", as_zip, "whole", True, 1, "-", "the file is a zip archive"),
    "xlsx-workbook": Case("flights", as_xlsx, "whole", False, 1, "-", "an XLSX workbook"),
    "json-array": Case("flights", as_json, "whole", True, 1, "-", "the file is JSON (it starts with '['"),
    "json-lines": Case("weather", as_json_lines, "whole", False, 1, "-", "JSON (it starts with '{'"),
    "parquet-named-csv": Case("flights", as_parquet, "whole", True, 1, "-", "the file is a Parquet file"),
    "utf16-with-bom": Case("weather", utf16, "whole", True, 1, "-", "UTF-16 text (little-endian byte-order"),
    "utf16-without-bom": Case("flights", utf16_le, "whole", False, 1, "-", "UTF-16 text without a byte"),
    "html-error-page": Case("airlines", lambda d: HTML, "whole", True, 1, "-", "XML or HTML"),
    "gzip-reference-table": Case("planes", gzip.compress, "whole", True, 1, "-", "gzip-compressed data"),
    # -- structurally broken files: refused whole, with line and column ---------------------------------
    "empty-file-over-good-day": Case("flights", lambda d: b"", "whole", True, 1, "-", "empty (0 bytes)"),
    "whitespace-only-file": Case("weather", lambda d: b" \n\n  \n", "whole", True, 1, "-", "empty (6 bytes)"),
    "no-final-newline": Case("flights", lambda d: d[:-1], "whole", True, 944, "-", "not end with a newline"),
    "unterminated-quote": Case(
        "flights", lambda d: set_cells(d, 600, tailnum='"N1234'), "whole", True, 600, "tailnum",
        "a quoted field never closes",
    ),
    "no-header-row": Case("weather", lambda d: _join(_lines(d)[1:]), "whole", True, 1, "EWR", "no header"),
    "tab-delimited": Case(
        "flights", lambda d: d.replace(b",", b"\t"), "whole", False, 1, TAB_HEADER,
        "wrong delimiter: the header is separated by '\\t'",
    ),
    "duplicated-header-column": Case(
        "flights", lambda d: rename_header(d, "month", "year"), "whole", True, 1, "year",
        "column 'year' appears more than once",
    ),
    "header-in-another-case": Case(
        "weather", lambda d: rename_header(d, "temp", "Temp"), "whole", True, 1, "Temp",
        "unexpected column 'Temp'",
    ),
    "extra-column-over-good-day": Case(
        "flights", lambda d: add_column(d, "gate", "A1"), "whole", True, 1, "gate",
        "unexpected column 'gate' at position 20",
    ),
    "missing-column-reference": Case(
        "airports", lambda d: drop_column(d, "tzone"), "whole", True, 1, "tzone", "missing column(s) 'tzone'"
    ),
    "latin1-over-good-day": Case(
        "flights", lambda d: d.replace(b",N3HYAA,", b",N\xe93HYAA,", 1), "whole", True, 100, "tailnum",
        "not valid UTF-8: byte 0xe9",
    ),
    # -- readable with odd but harmless form: accepted whole --------------------------------------------
    "utf8-bom": Case("flights", lambda d: codecs.BOM_UTF8 + d, "accepted", False),
    "crlf-line-endings": Case("flights", crlf, "accepted"),
    "cr-only-line-endings": Case("weather", lambda d: d.replace(b"\n", b"\r"), "accepted", False),
    "trailing-blank-lines": Case("flights", lambda d: d + b"\n\n\n", "accepted"),
    "trailing-blank-crlf-lines": Case("weather", lambda d: crlf(d) + b"\r\n \r\n", "accepted"),
    "reordered-columns": Case("flights", lambda d: swap_columns(d, "origin", "year"), "accepted"),
    "reordered-columns-reference": Case("planes", lambda d: swap_columns(d, "tailnum", "engine"), "accepted"),
    "header-with-spaces": Case("airlines", lambda d: d.replace(b"carrier,", b" carrier , ", 1), "accepted"),
    # -- lines that are no well-formed row: that row is quarantined, the rest stored --------------------
    "row-with-too-few-fields": Case(
        "weather", lambda d: replace_line(d, 30, lambda x: x.rsplit(b",", 2)[0]), "rows", True, 30, "visib",
        "the row has 13 fields, expected 15", 1,
    ),
    "row-with-too-many-fields": Case(
        "flights", lambda d: replace_line(d, 700, lambda x: x + b",extra"), "rows", False, 700, "#20",
        "the row has 20 fields, expected 19", 1,
    ),
    "blank-line-between-rows": Case(
        "weather", lambda d: insert_line(d, 40, b""), "rows", True, 40, None, "blank line between rows", 1
    ),
    "header-repeated-as-row": Case(
        "flights", lambda d: header_repeated_at(d, 500), "rows", True, 500, None, "the header repeated", 1
    ),
    "one-mb-field": Case(
        "flights", lambda d: set_cells(d, 100, tailnum="N" * ONE_MB), "rows", True, 100, "tailnum",
        "over the limit of 131,072", 1,
    ),
    "nul-byte-in-field": Case(
        "weather", lambda d: set_cells(d, 12, origin="J\x00FK"), "rows", True, 12, "origin",
        "contains a NUL byte", 1,
    ),
    "stray-quote": Case(
        "flights", lambda d: set_cells(d, 321, dest='"BOS"X'), "rows", True, 321, "dest", "malformed CSV", 1
    ),
    # -- readable rows that break the contract: quarantined row by row ----------------------------------
    "unknown-carrier-redelivered": Case(
        "flights", lambda d: set_cells(d, 77, carrier="QQ"), "rows", True, 77, "carrier",
        "'QQ' is not one of the known carriers", 1,
    ),
    "negative-distance": Case(
        "flights", lambda d: set_cells(d, 88, distance="-5"), "rows", False, 88, "distance",
        "-5.0 is outside [1, 6000]", 1,
    ),
    "bad-time-hhmm": Case(
        "flights", lambda d: set_cells(d, 99, sched_dep_time="2561"), "rows", True, 99, "sched_dep_time",
        "2561 is outside [0, 2359]", 1,
    ),
    "time-with-colon": Case(
        "flights", lambda d: set_cells(d, 101, dep_time="12:30"), "rows", True, 101, "dep_time",
        "'12:30' is not an integer", 1,
    ),
    "month-13": Case(
        "weather", lambda d: set_cells(d, 5, month="13"), "rows", True, 5, "month", "13 is outside [1, 12]", 1
    ),
    "humidity-over-100": Case(
        "weather", lambda d: set_cells(d, 6, humid="150"), "rows", False, 6, "humid",
        "150.0 is outside [0, 100]", 1,
    ),
    "timestamp-without-zone": Case(
        "weather", lambda d: set_cells(d, 7, time_hour="2013-01-02 06:00:00"), "rows", True, 7, "time_hour",
        "not an ISO-8601 timestamp with a zone", 1,
    ),
    "duplicate-weather-key": Case(
        "weather", lambda d: duplicate_line(d, 3), "rows", True, 74, "origin, time_hour", "duplicate of", 1
    ),
    "carrier-code-pattern": Case(
        "airlines", lambda d: set_cells(d, 3, carrier="A"), "rows", True, 3, "carrier", "does not match", 1,
        {"max_quarantine_fraction": 0.1},  # one row of 16 is 6%, over the default 2%
    ),
    "latitude-out-of-range": Case(
        "airports", lambda d: set_cells(d, 10, lat="95"), "rows", True, 10, "lat", "95.0 is outside [-90", 1
    ),
    "negative-engines": Case(
        "planes", lambda d: set_cells(d, 20, engines="-1"), "rows", True, 20, "engines", "-1 is outside [0", 1
    ),
    # -- readable, but refused as a whole delivery: the old data stays ----------------------------------
    "all-rows-of-another-date": Case(
        "flights", lambda d: every_row(d, day="5"), "refused", says="blocking check quarantine_rate failed"
    ),
    "all-rows-of-another-date-weather": Case(
        "weather", lambda d: every_row(d, day="9"), "refused", says="blocking check quarantine_rate failed"
    ),
    "header-only-over-good-day": Case(
        "flights", header_only, "refused", says="would shrink the partition from 943 to 0 accepted rows"
    ),
    "header-only-reference": Case(
        "airlines", header_only, "refused", says="would shrink the partition from 16 to 0 accepted rows"
    ),
    "shrink-by-60pct": Case(
        "flights", lambda d: keep_share(d, 0.4), "refused", says="from 943 to 377 accepted rows (60%; limit"
    ),
    "shrink-by-60pct-allowed": Case(
        "flights", lambda d: keep_share(d, 0.4), "accepted", config={"allow_shrink": True}
    ),
    "shrink-by-60pct-reference": Case(
        "planes", lambda d: keep_share(d, 0.4), "refused", says="from 3322 to 1328 accepted rows (60%"
    ),
    "shrink-by-30pct-within-limit": Case("weather", lambda d: keep_share(d, 0.7), "accepted"),
    "too-many-bad-rows-first-delivery": Case(
        "weather", lambda d: every_row(d, origin="BOS"), "refused", False, says="quarantine_rate failed"
    ),
    "duplicate-carrier": Case(  # one bad row of 17 is over the default 2%
        "airlines", lambda d: duplicate_line(d, 5), "refused", says="quarantine_rate failed: 1 of 17 rows"
    ),
    # -- the landing zone boundary: links are refused unread --------------------------------------------
    "symlink-to-a-file-outside": Case("flights", None, "link", says="a symbolic link to"),
    "symlink-inside-the-zone": Case("weather", None, "link", says="a symbolic link to"),
    "symlinked-directory": Case("weather", None, "link", False, says="a symbolic link to"),
    "symlink-reference-table": Case("airlines", None, "link", says="a symbolic link to"),
}
# fmt: on


def _land_link(world: World, case_id: str, key: str) -> str:
    """Put a link where the landed file was; returns what the link points to."""
    path = Path(world.landing.root) / key
    outside = world.root / "outside"
    outside.mkdir(exist_ok=True)
    secret = outside / "secret.csv"
    secret.write_bytes(path.read_bytes().replace(b"\n", b",SECRET-BYTES\n", 1))
    if case_id == "symlink-inside-the-zone":
        target = str(path.with_name("2013-01-01.csv"))
    elif case_id == "symlinked-directory":
        folder = path.parent
        shutil.move(folder, outside / "folder")
        folder.symlink_to(outside / "folder", target_is_directory=True)
        return str(outside / "folder")
    else:
        target = str(secret)
    path.unlink()
    path.symlink_to(target)
    return target


def _rows_after_header(data: bytes) -> int:
    """Rows in as the platform counts them: lines after the header, trailing blank lines excluded."""
    text = data.decode("utf-8-sig")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[1:]
    while lines and not lines[-1].strip():
        lines.pop()
    return len(lines)


def _reader_view(lake: LocalObjectStore, table: str, partition: str | None) -> dict[str, bytes]:
    """What readers of this partition see: its stored Parquet and its quarantined rows."""
    keys = [lake_key(table, partition), rows_key(table, partition or "reference")]
    return {k: lake.read_bytes(k) for k in keys if lake.exists(k)}


def _latest(instance: dg.DagsterInstance, table: str, partition: str | None):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(["raw", table]), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    return records[0].storage_id if records else None


@pytest.mark.parametrize("case_id", CASES)
def test_bad_input(world: World, case_id: str):
    case = CASES[case_id]
    table, landing, lake = case.table, world.landing, world.lake
    reference = table in ("airlines", "airports", "planes")
    partition = None if reference else (DAY if case.redelivery else NEW_DAY)
    key = landing_key(table, partition)
    before, latest_before = _reader_view(lake, table, partition), _latest(world.instance, table, partition)
    assert bool(before) is (reference or case.redelivery)
    if case.corrupt is None:
        target = _land_link(world, case_id, key)
        bad = None
    else:
        bad = case.corrupt(landing.read_bytes(key))
        landing.write_bytes(key, bad)
    source = landing.uri(key)
    node = f"raw__{table}"
    run_config = {"ops": {node: {"config": case.config}}} if case.config else None

    result = materialize_raw(
        landing, lake, [f"raw/{table}"], partition_key=partition, instance=world.instance,
        raise_on_error=False, run_config=run_config,
    )  # fmt: skip

    if bad is not None:
        assert landing.read_bytes(key) == bad  # the landed file is never changed
    assert not lake.list_objects(STAGING_PREFIX)  # nothing staged is left, whatever the outcome
    if case.outcome in ("accepted", "rows"):
        _assert_stored(result, case, lake, table, partition, source, bad)
        return
    # Refused: nothing a reader sees changed, and the run says so, naming the file.
    assert not result.success
    assert result.asset_materializations_for_node(node) == []
    assert _reader_view(lake, table, partition) == before
    assert _latest(world.instance, table, partition) == latest_before
    description = result.failure_data_for_node(node).user_failure_data.description
    label = partition or "reference"
    version = landing.head(key).version
    if case.outcome == "whole":
        assert f"{source}: line {case.line}, column {case.column}: " in description
        assert case.says in description
        folder = f"quarantine/{table}/files/{label}/{safe_version(version)}"
        reason = json.loads(lake.read_bytes(f"{folder}/reason.json"))
        assert (reason["file"], reason["line"], reason["column"]) == (source, case.line, case.column)
        assert lake.read_bytes(f"{folder}/{key.rsplit('/', 1)[-1]}") == bad  # the bytes, untouched
    elif case.outcome == "link":
        assert f"{source}: refused, not read: " in description and case.says in description
        folder = f"quarantine/{table}/files/{label}/{safe_version(version)}"
        assert [o.key for o in lake.list_objects(folder)] == [f"{folder}/reason.json"]  # no bytes copied
        reason = json.loads(lake.read_bytes(f"{folder}/reason.json"))
        assert reason["link_target"] == target and reason["bytes"] == 0
        assert not any(b"SECRET-BYTES" in lake.read_bytes(o.key) for o in lake.list_objects())
    else:  # refused
        assert description.startswith(f"refused the delivery of {table} {label}: ")
        assert case.says in description
        assert "the previous data of every partition of this run stays as it was" in description
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert set(checks) == {"great_expectations_suite", "quarantine_rate"}  # recorded on the asset
        assert checks["quarantine_rate"] is ("quarantine_rate" not in case.says)
        folder = refused_folder(table, label, version)
        reason = json.loads(lake.read_bytes(f"{folder}/reason.json"))
        refused_rows = lake.read_parquet(f"{folder}/rows.parquet")
        assert (
            reason["rows_in"]
            == reason["rows_accepted"] + reason["rows_quarantined"]
            == _rows_after_header(bad)
        )
        assert len(refused_rows) == reason["rows_quarantined"]
        assert reason["landed_file"] == source and any(case.says in r for r in reason["reasons"])


def _assert_stored(result, case: Case, lake, table: str, partition: str | None, source: str, bad: bytes):
    assert result.success, result.failure_data_for_node(f"raw__{table}")
    (event,) = result.asset_materializations_for_node(f"raw__{table}")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert event.partition == partition
    rows_in = _rows_after_header(bad)
    assert (meta["rows_in"], meta["rows_quarantined"]) == (rows_in, case.quarantined)
    assert meta["rows_accepted"] == meta["dagster/row_count"] == rows_in - case.quarantined
    stored = lake.read_parquet(lake_key(table, partition))
    quarantined = lake.read_parquet(rows_key(table, partition or "reference"))
    assert (len(stored), len(quarantined)) == (meta["rows_accepted"], meta["rows_quarantined"])
    if case.outcome == "accepted":
        return
    assert len(quarantined) == 1
    row = quarantined.iloc[0]
    assert (row["_source_file"], row["_source_line"]) == (source, case.line)
    reason = row["_reason"]
    named = rf"columns? {re.escape(case.column)}:" if case.column else "line:"
    assert re.match(named, reason) and case.says in reason, reason


def test_at_least_forty_kinds_across_every_table_and_both_kinds_of_delivery():
    assert len(CASES) >= 40
    assert {c.table for c in CASES.values()} == {"flights", "weather", "airlines", "airports", "planes"}
    assert {c.outcome for c in CASES.values()} == {"accepted", "rows", "whole", "refused", "link"}
    assert {c.redelivery for c in CASES.values() if c.table in ("flights", "weather")} == {True, False}


# --------------------------------------------------------------------------------------------------
# What the table does not show.


def test_a_refused_redelivery_keeps_the_previous_quarantine_and_a_fix_then_replaces_it(world: World):
    """The old day had one quarantined row; a refused re-delivery keeps it; a good one replaces it."""
    landing, lake, key = world.landing, world.lake, landing_key("weather", DAY)
    real = landing.read_bytes(key)
    landing.write_bytes(key, set_cells(real, 8, temp="500"))
    assert materialize_raw(landing, lake, ["raw/weather"], partition_key=DAY, instance=world.instance).success
    first_view = _reader_view(lake, "weather", DAY)
    assert len(lake.read_parquet(rows_key("weather", DAY))) == 1

    landing.write_bytes(key, header_only(real))
    refused = materialize_raw(
        landing, lake, ["raw/weather"], partition_key=DAY, instance=world.instance, raise_on_error=False
    )
    assert not refused.success and _reader_view(lake, "weather", DAY) == first_view

    landing.write_bytes(key, real)
    assert materialize_raw(landing, lake, ["raw/weather"], partition_key=DAY, instance=world.instance).success
    assert len(lake.read_parquet(rows_key("weather", DAY))) == 0
    assert len(lake.read_parquet(lake_key("weather", DAY))) == 72
    refusals = lake.list_objects(f"quarantine/weather/refused/{DAY}")
    assert len([o for o in refusals if o.key.endswith("reason.json")]) == 1  # the refused one, kept


def test_a_ranged_run_gives_each_partition_its_own_figures(world: World):
    """A single-run backfill of three days: each day's materialization carries that day's own counts,
    read back from the instance."""
    landing, lake = world.landing, world.lake
    key = landing_key("flights", NEW_DAY)
    landing.write_bytes(key, set_cells(set_cells(landing.read_bytes(key), 5, carrier="QQ"), 9, distance="0"))
    result = materialize_raw(
        landing, lake, ["raw/flights"], partition_range=("2013-01-01", NEW_DAY), instance=world.instance
    )
    assert result.success
    expected = {
        "2013-01-01": (842, 842, 0),
        DAY: (943, 943, 0),
        NEW_DAY: (914, 912, 2),
    }
    for day, (rows_in, accepted, quarantined) in expected.items():
        (record,) = world.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["raw", "flights"]), asset_partitions=[day]), limit=1
        ).records
        assert record.run_id == result.run_id
        meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
        assert (meta["rows_in"], meta["rows_accepted"], meta["rows_quarantined"]) == (
            rows_in,
            accepted,
            quarantined,
        )
        assert meta["dagster/row_count"] == accepted == len(lake.read_parquet(lake_key("flights", day)))
        assert meta["stored_at"] == lake.uri(lake_key("flights", day))
        assert meta["quarantine"] == lake.uri(rows_key("flights", day))
        assert meta["landed_file"] == landing.uri(landing_key("flights", day))
        assert meta["partitions"] == 3 and meta["run_rows_in"] == 842 + 943 + 914
        assert ("quarantined_preview" in meta) is (quarantined > 0)


def test_a_ranged_run_with_one_shrinking_day_commits_none_of_its_days(world: World):
    landing, lake = world.landing, world.lake
    views = {d: _reader_view(lake, "flights", d) for d in ("2013-01-01", DAY, NEW_DAY)}
    key = landing_key("flights", DAY)
    landing.write_bytes(key, keep_share(landing.read_bytes(key), 0.2))
    result = materialize_raw(
        landing, lake, ["raw/flights"], partition_range=("2013-01-01", NEW_DAY), instance=world.instance,
        raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    description = result.failure_data_for_node("raw__flights").user_failure_data.description
    assert description.startswith("refused the delivery of flights 2013-01-01..2013-01-03 (3 partitions): ")
    assert f"{DAY}: the re-delivery would shrink the partition from 943 to 188" in description
    assert {d: _reader_view(lake, "flights", d) for d in views} == views
    assert not lake.exists(lake_key("flights", NEW_DAY))
    # Every day of the refused run keeps its quarantine record under refused/.
    for day in ("2013-01-01", DAY, NEW_DAY):
        version = landing.head(landing_key("flights", day)).version
        assert lake.exists(f"{refused_folder('flights', day, version)}/reason.json")


def test_a_first_header_only_delivery_is_accepted(world: World):
    """weather of 2013-12-31 has no rows (the data set ends at 2013-12-30 23:00 UTC): not a shrink."""
    import datetime as dt

    from mlops_assets.replay import replay

    replay(
        world.landing,
        dt.date(2013, 12, 31),
        dt.date(2013, 12, 31),
        tables=("weather",),
        include_reference=False,
    )
    result = materialize_raw(world.landing, world.lake, ["raw/weather"], partition_key="2013-12-31")
    assert result.success and len(world.lake.read_parquet(lake_key("weather", "2013-12-31"))) == 0
    # Re-delivered header-only again: 0 -> 0 is no shrink either.
    world.landing.write_bytes("weather/2013-12-31.csv", world.landing.read_bytes("weather/2013-12-31.csv"))
    assert materialize_raw(world.landing, world.lake, ["raw/weather"], partition_key="2013-12-31").success


def test_staging_left_by_dead_runs_is_never_read_and_is_removed_but_a_live_runs_is_kept(world: World):
    landing, lake, instance = world.landing, world.lake, world.instance
    lake.write_bytes(f"{STAGING_PREFIX}/dead-run/{lake_key('flights', NEW_DAY)}", b"half a parquet file")
    live = started_run(instance, "some_ingestion_job")
    lake.write_bytes(f"{STAGING_PREFIX}/{live.run_id}/{lake_key('weather', NEW_DAY)}", b"being written")
    # Readers list raw/ (dbt: raw/flights/*.parquet): the staged object is not among them.
    assert [o.key for o in lake.list_objects("raw/flights")] == [lake_key("flights", DAY)]

    result = materialize_raw(landing, lake, ["raw/flights"], partition_key=NEW_DAY, instance=instance)

    assert result.success
    assert [o.key for o in lake.list_objects(STAGING_PREFIX)] == [
        f"{STAGING_PREFIX}/{live.run_id}/{lake_key('weather', NEW_DAY)}"
    ]
    assert not (Path(lake.root) / STAGING_PREFIX / "dead-run").exists()
    assert len(lake.read_parquet(lake_key("flights", NEW_DAY))) == 914


def test_the_store_refuses_dotdot_keys_and_links(tmp_path: Path):
    from mlops_assets.resources.storage import OutsideStore

    store = LocalObjectStore(root=str(tmp_path / "zone"))
    store.write_bytes("flights/2013-01-02.csv", b"a\n")
    (tmp_path / "secret.csv").write_bytes(b"secret\n")
    os.symlink(tmp_path / "secret.csv", tmp_path / "zone" / "flights" / "2013-01-03.csv")
    for bad_key in ("../secret.csv", "flights/../../secret.csv", "/etc/passwd", "flights//x.csv", "./x"):
        with pytest.raises(OutsideStore, match=r"relative|'\.\.'"):
            store.read_bytes(bad_key)
        with pytest.raises(OutsideStore):
            store.write_bytes(bad_key, b"x")
    with pytest.raises(OutsideStore, match="a symbolic link to"):
        store.read_bytes("flights/2013-01-03.csv")
    link = store.head("flights/2013-01-03.csv")
    assert link.refused and link.link_target == str(tmp_path / "secret.csv") and link.size == 0
    assert not store.exists("flights/2013-01-03.csv")
    listed = {o.key: o for o in store.list_objects()}
    assert listed["flights/2013-01-03.csv"].refused and listed["flights/2013-01-02.csv"].refused is None


def test_commit_and_delete_on_the_local_store(tmp_path: Path):
    store = LocalObjectStore(root=str(tmp_path / "lake"))
    store.write_bytes("raw/t/a.parquet", b"old")
    store.write_bytes("staging/run-1/raw/t/a.parquet", b"new")
    inode = os.stat(store.uri("staging/run-1/raw/t/a.parquet")).st_ino
    store.commit("staging/run-1/raw/t/a.parquet", "raw/t/a.parquet")
    assert store.read_bytes("raw/t/a.parquet") == b"new"
    assert os.stat(store.uri("raw/t/a.parquet")).st_ino == inode  # a rename, not a copy
    assert not (tmp_path / "lake" / "staging").exists()  # emptied folders are pruned
    store.delete("raw/t/a.parquet")
    store.delete("raw/t/a.parquet")  # no error when there is none
    assert store.list_objects() == []


def test_commit_delete_and_dotdot_keys_on_s3(s3_bucket):
    from dagster_aws.s3 import S3Resource

    from mlops_assets.resources.storage import OutsideStore
    from mlops_assets.resources.storage_s3 import S3ObjectStore

    store = S3ObjectStore(
        s3=S3Resource(endpoint_url=s3_bucket.endpoint.url, region_name="us-east-1"),
        bucket=s3_bucket.name,
        prefix="lake",
    )
    store.write_bytes("raw/t/a.parquet", b"old")
    store.write_bytes("staging/run-1/raw/t/a.parquet", b"new")
    store.commit("staging/run-1/raw/t/a.parquet", "raw/t/a.parquet")
    assert s3_bucket.get("lake/raw/t/a.parquet") == b"new"
    assert s3_bucket.keys("lake/") == ["lake/raw/t/a.parquet"]
    store.delete("raw/t/a.parquet")
    assert s3_bucket.keys("lake/") == []
    # S3 keeps '..' literally; the store lists such a key as refused and never reads it.
    s3_bucket.put("lake/flights/../2013-01-02.csv", b"x\n")
    s3_bucket.put("lake/flights/", b"")  # a console's folder placeholder: not an object
    (listed,) = store.list_objects()
    assert listed.key == "flights/../2013-01-02.csv" and "'..'" in listed.refused
    with pytest.raises(OutsideStore):
        store.read_bytes("flights/../2013-01-02.csv")
    assert not store.exists("flights/../2013-01-02.csv")


KILLED_BETWEEN_STAGING_AND_COMMIT = """
import os, signal, sys
import dagster as dg
from mlops_assets.ingestion.staging import Staging
from mlops_assets.resources.storage import LocalObjectStore
from tests.conftest import materialize_raw

def die(self, *args, **kwargs):  # the process dies the moment everything is staged, before any commit
    os.kill(os.getpid(), signal.SIGKILL)

Staging.commit_all = die
root = sys.argv[1]
landing, lake = LocalObjectStore(root=root + "/landing"), LocalObjectStore(root=root + "/lake")
materialize_raw(landing, lake, ["raw/flights"], partition_key=sys.argv[2])
"""


def test_a_process_killed_between_staging_and_commit_leaves_the_old_data_and_the_next_run_cleans_up(
    world: World, tmp_path: Path
):
    import subprocess
    import sys

    landing, lake = world.landing, world.lake
    key = landing_key("flights", DAY)
    before = _reader_view(lake, "flights", DAY)
    landing.write_bytes(key, set_cells(landing.read_bytes(key), 10, distance="0"))
    script = tmp_path / "killed.py"
    script.write_text(KILLED_BETWEEN_STAGING_AND_COMMIT)
    repository = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(repository)}
    done = subprocess.run(
        [sys.executable, str(script), str(world.root), DAY], cwd=repository, env=env, capture_output=True
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    staged = [o.key for o in lake.list_objects(STAGING_PREFIX)]
    assert sorted(k.split("/", 2)[2] for k in staged) == sorted(
        [lake_key("flights", DAY), rows_key("flights", DAY)]
    )
    assert _reader_view(lake, "flights", DAY) == before  # readers still see the accepted delivery

    result = materialize_raw(landing, lake, ["raw/flights"], partition_key=DAY, instance=world.instance)
    assert result.success
    assert not lake.list_objects(STAGING_PREFIX)
    assert len(lake.read_parquet(lake_key("flights", DAY))) == 942
    assert lake.read_parquet(rows_key("flights", DAY))["_source_line"].tolist() == [10]
