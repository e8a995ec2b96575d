"""Which day files of a feature folder a read needs.

The feature asset writes one Parquet file per table and day, `<table>/<YYYY-MM-DD>.parquet`, so a read of a
time window opens only the files of that window. Imports nothing heavy: the Feast offline store, the
online store's windows and the `feast` CLI all use it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath


def day_of_file(path: Path | PurePosixPath) -> dt.date | None:
    """The day of a `<YYYY-MM-DD>.parquet` feature file; None for any other name."""
    try:
        return dt.date.fromisoformat(path.stem)
    except ValueError:
        return None


def in_window(name: str, first: dt.date | None, last: dt.date | None) -> bool:
    """A Parquet file a read over [first, last] may need: a day file of the window, or a file that is not
    a day file (kept, as it could hold any day). Hidden and temporary names never are (files still being
    written start with `.`). None for a bound leaves that side open."""
    file = PurePosixPath(name)
    if file.suffix != ".parquet" or file.name.startswith((".", "_")):
        return False
    day = day_of_file(file)
    if day is None:
        return True
    return (first is None or first <= day) and (last is None or day <= last)
