"""Read a landed CSV file: a broken file is refused whole, a broken row is set aside as a row.

Refused whole (`UnreadableFile`, quarantined whole by the caller; its message names the file, the line
and the column): an empty file; content that is not CSV text at all (gzip, zip, XLSX, Parquet, JSON,
UTF-16/32, ...: named as such); bytes that are not UTF-8; a header with a wrong delimiter, a missing,
unexpected or repeated column, or no header at all; a file whose last line has no newline (cut off in
transfer: what follows is missing, so none of it is taken); a quoted field that never closes.

Set aside as a row (`RejectedRow`: line, reason naming the column, the row's text), the rest of the
file is read: a row with too many or too few fields, a row CSV cannot parse (a stray quote, a field
over `csv.field_size_limit()`), a NUL byte in a field, the header repeated as a row, and a blank line
between rows. Blank lines after the last row are not rows: they are counted, not quarantined.
Every other line is a row, so rows in = rows read + rows rejected.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from mlops_assets.ingestion.contracts import TableContract

# The 1-based line of the header; data rows start on line 2.
HEADER_LINE = 1
# Leading bytes of formats that are delivered by mistake instead of CSV text, most specific first.
NOT_CSV_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed data (decompress it before delivery)"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"PAR1", "a Parquet file"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"(\xb5/\xfd", "zstd-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office document (XLS)"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"ARROW1", "an Arrow IPC file"),
    (b"\xff\xfe\x00\x00", "UTF-32 text (little-endian byte-order mark)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text (big-endian byte-order mark)"),
    (b"\xff\xfe", "UTF-16 text (little-endian byte-order mark)"),
    (b"\xfe\xff", "UTF-16 text (big-endian byte-order mark)"),
)


class UnreadableFile(ValueError):
    """The file as a whole cannot be ingested; nothing of it is stored, all of it is quarantined."""

    def __init__(self, source: str, line: int, column: str, problem: str) -> None:
        self.source, self.line, self.column, self.problem = source, line, column, problem
        super().__init__(f"{source}: line {line}, column {column}: {problem}")

    def as_record(self) -> dict[str, object]:
        return {"file": self.source, "line": self.line, "column": self.column, "problem": self.problem}


@dataclass(frozen=True)
class RejectedRow:
    """A line that is not a well-formed row: quarantined with its text, the rest of the file is read."""

    line: int
    reason: str  # "column <name>: <problem>" (or "line: <problem>" when no column is to blame)
    text: str  # the line(s) as landed, without the final newline


@dataclass(frozen=True)
class RawTable:
    """The file's cells as text, in the contract's column order, with each row's line number."""

    source: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    lines: list[int]
    rejected: tuple[RejectedRow, ...] = ()
    trailing_blank_lines: int = 0


def read_landed_csv(data: bytes, source: str, contract: TableContract) -> RawTable:
    _refuse_other_formats(data, source)
    if not data.strip():
        raise UnreadableFile(
            source, HEADER_LINE, "-", f"the file is empty ({len(data)} bytes); expected a header row"
        )
    text = _decode(data, source)
    if not text.endswith(("\n", "\r")):
        last_line = text.count("\n") + 1
        raise UnreadableFile(
            source, last_line, "-", "the file is truncated: its last line does not end with a newline"
        )
    lines = _RecordedLines(text)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        raise UnreadableFile(
            source, HEADER_LINE, "-", f"the header cannot be parsed as CSV: {error}"
        ) from error
    lines.take()
    order = _check_header(header, source, contract)
    return _read_rows(reader, lines, header, order, source, contract)


def _read_rows(
    reader, lines: _RecordedLines, header: list[str], order: list[int], source: str, contract: TableContract
) -> RawTable:
    rows: list[list[str]] = []
    row_lines: list[int] = []
    rejected: list[RejectedRow] = []
    blanks: list[RejectedRow] = []  # blank lines not yet known to be inside the file or after its end
    while True:
        start = lines.count + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            text = lines.take()
            if lines.exhausted:  # a quote opened on `start` swallowed the rest of the file
                raise UnreadableFile(
                    source, start, _quoted_column(text, header), f"a quoted field never closes: {error}"
                ) from error
            rejected += blanks
            blanks = []
            rejected.append(RejectedRow(start, _csv_error_reason(error, text, header), _line_text(text)))
            continue
        text = lines.take()
        if not text.strip():
            blanks.append(RejectedRow(start, "line: blank line between rows (a row was expected)", ""))
            continue
        rejected += blanks
        blanks = []
        problem = _row_problem(fields, header)
        if problem:
            rejected.append(RejectedRow(start, problem, _line_text(text)))
            continue
        rows.append([fields[i] for i in order])
        row_lines.append(start)
    return RawTable(
        source=source,
        columns=contract.column_names,
        rows=rows,
        lines=row_lines,
        rejected=tuple(rejected),
        trailing_blank_lines=len(blanks),
    )


class _RecordedLines:
    """The file's physical lines (as csv sees them) that also keeps the text of the current record."""

    def __init__(self, text: str) -> None:
        self._lines: Iterator[str] = iter(io.StringIO(text, newline=""))
        self._taken: list[str] = []
        self.count = 0
        self.exhausted = False

    def __iter__(self) -> _RecordedLines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._lines)
        except StopIteration:
            self.exhausted = True
            raise
        self._taken.append(line)
        self.count += 1
        return line

    def take(self) -> str:
        text, self._taken = "".join(self._taken), []
        return text


def _line_text(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


def _row_problem(fields: list[str], header: list[str]) -> str | None:
    expected = len(header)
    if len(fields) != expected:
        # Name the column where the row stops matching the header: first missing or first extra.
        column = _column_at(header, min(len(fields), expected))
        return f"column {column}: {_field_count_problem(len(fields), expected)}"
    if [f.strip() for f in fields] == [h.strip() for h in header]:
        return "line: the header repeated as a row (two files concatenated?)"
    for index, value in enumerate(fields):
        if "\x00" in value:
            return f"column {_column_at(header, index)}: contains a NUL byte (0x00)"
    return None


def _csv_error_reason(error: csv.Error, text: str, header: list[str]) -> str:
    limit = csv.field_size_limit()
    pieces = text.split(",")
    if "field larger than field limit" in str(error):
        index = next((i for i, p in enumerate(pieces) if len(p) > limit), None)
        column = "-" if index is None else _column_at(header, index)
        size = max(len(p) for p in pieces)
        return f"column {column}: a field of about {size:,} characters is over the limit of {limit:,}"
    index = next((i for i, p in enumerate(pieces) if '"' in p), None)
    column = "-" if index is None else _column_at(header, index)
    return f"column {column}: malformed CSV: {error}"


def _quoted_column(text: str, header: list[str]) -> str:
    """The column whose field opens the quote that never closes (on the record's first line)."""
    first_line = text.split("\n", 1)[0]
    for index, piece in enumerate(first_line.split(",")):
        if piece.startswith('"') and piece.count('"') % 2 == 1:
            return _column_at(header, index)
    return "-"


def _refuse_other_formats(data: bytes, source: str) -> None:
    for magic, kind in NOT_CSV_MAGIC:
        if data.startswith(magic):
            if magic == b"PK\x03\x04" and b"[Content_Types].xml" in data[:4096]:
                kind = "an XLSX workbook (a zip archive); export the sheet as CSV"
            raise UnreadableFile(source, HEADER_LINE, "-", f"the file is {kind}, not CSV text")
    start = data.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if start in (b"{", b"["):
        raise UnreadableFile(
            source, HEADER_LINE, "-", f"the file is JSON (it starts with {start.decode()!r}), not CSV text"
        )
    if start == b"<":
        raise UnreadableFile(
            source, HEADER_LINE, "-", "the file is XML or HTML (it starts with '<'), not CSV text"
        )
    head = data[:4096]
    if len(head) >= 8 and head.count(0) * 4 >= len(head):
        raise UnreadableFile(
            source,
            HEADER_LINE,
            "-",
            f"the file looks like UTF-16 text without a byte-order mark ({head.count(0)} of the first "
            f"{len(head)} bytes are 0x00); expected UTF-8",
        )


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
    if not set(names) & set(expected):
        raise UnreadableFile(
            source,
            HEADER_LINE,
            (names[0][:40] if names else "") or "#1",
            f"no header row: line 1 names none of the {contract.name} contract's columns "
            f"({', '.join(expected[:3])}, ...); is it a data row?",
        )
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
