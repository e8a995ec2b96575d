"""Read a landed CSV file strictly: its structure must be intact before any row is considered.

A file that cannot be read as a whole (empty, undecodable, wrong delimiter, missing or unexpected
columns, a row with the wrong number of fields, cut off mid-row) raises `UnreadableFile`, whose
message names the file, the line and the column. Such a file is quarantined whole by the caller.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass

from mlops_assets.defs.ingestion.contracts import TableContract

# The 1-based line of the header; data rows start on line 2.
HEADER_LINE = 1


class UnreadableFile(ValueError):
    """The file as a whole cannot be ingested; nothing of it is stored, all of it is quarantined."""

    def __init__(self, source: str, line: int, column: str, problem: str) -> None:
        self.source, self.line, self.column, self.problem = source, line, column, problem
        super().__init__(f"{source}: line {line}, column {column}: {problem}")

    def as_record(self) -> dict[str, object]:
        return {"file": self.source, "line": self.line, "column": self.column, "problem": self.problem}


@dataclass(frozen=True)
class RawTable:
    """The file's cells as text, in the contract's column order, with each row's line number."""

    source: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    lines: list[int]


def read_landed_csv(data: bytes, source: str, contract: TableContract) -> RawTable:
    if not data.strip():
        raise UnreadableFile(
            source, HEADER_LINE, "-", f"the file is empty ({len(data)} bytes); expected a header row"
        )
    text = _decode(data, source)
    if not text.endswith("\n"):
        last_line = text.count("\n") + 1
        raise UnreadableFile(
            source, last_line, "-", "the file is truncated: its last line does not end with a newline"
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        raise UnreadableFile(
            source, HEADER_LINE, "-", f"the header cannot be parsed as CSV: {error}"
        ) from error
    order = _check_header(header, source, contract)
    rows: list[list[str]] = []
    lines: list[int] = []
    expected = len(header)
    try:
        for fields in reader:
            line = reader.line_num
            if not fields:
                raise UnreadableFile(source, line, "-", "blank line inside the file")
            if len(fields) != expected:
                # Name the column where the row stops matching the header: first missing or first extra.
                column = _column_at(header, min(len(fields), expected))
                raise UnreadableFile(source, line, column, _field_count_problem(len(fields), expected))
            rows.append([fields[i] for i in order])
            lines.append(line)
    except csv.Error as error:
        raise UnreadableFile(source, reader.line_num, "-", f"malformed CSV: {error}") from error
    return RawTable(source=source, columns=contract.column_names, rows=rows, lines=lines)


def _decode(data: bytes, source: str) -> str:
    # A byte-order mark is how some exporters say "UTF-8"; it is not part of the first column's name.
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        line_start = before.rfind(b"\n") + 1
        header = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").split(",")
        column = _column_at(header, data[line_start : error.start].count(b","))
        raise UnreadableFile(
            source, line, column, f"not valid UTF-8: byte 0x{data[error.start]:02x} at offset {error.start}"
        ) from error


def _check_header(header: list[str], source: str, contract: TableContract) -> list[int]:
    """Map contract columns onto header positions; any missing or unexpected column is fatal."""
    names = [h.strip() for h in header]
    if len(names) == 1 and any(d in names[0] for d in (";", "\t", "|")):
        delimiter = next(d for d in (";", "\t", "|") if d in names[0])
        raise UnreadableFile(
            source,
            HEADER_LINE,
            names[0][:40],
            f"wrong delimiter: the header is separated by {delimiter!r}, expected ','",
        )
    expected = contract.column_names
    missing = [c for c in expected if c not in names]
    unexpected = [(i, n) for i, n in enumerate(names) if n not in expected]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise UnreadableFile(
            source, HEADER_LINE, duplicated[0], f"column {duplicated[0]!r} appears more than once"
        )
    if unexpected:
        position, name = unexpected[0]
        raise UnreadableFile(
            source,
            HEADER_LINE,
            name,
            f"unexpected column {name!r} at position {position + 1}; the {contract.name} contract has "
            f"{len(expected)} columns and schema changes must be agreed, not guessed",
        )
    if missing:
        raise UnreadableFile(
            source, HEADER_LINE, missing[0], f"missing column(s) {', '.join(map(repr, missing))}"
        )
    return [names.index(c) for c in expected]


def _column_at(header: list[str], index: int) -> str:
    return header[index].strip() if 0 <= index < len(header) else f"#{index + 1}"


def _field_count_problem(found: int, expected: int) -> str:
    if found < expected:
        return f"the row has {found} fields, expected {expected}: it ends before this column (truncated row)"
    return f"the row has {found} fields, expected {expected} (an unquoted delimiter or an extra field)"
