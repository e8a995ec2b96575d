"""The data contract of every landed table: columns, dtypes, nullability, ranges, sets, keys.

One declaration drives both the row-level quarantine (rules.py) and the Great Expectations suite
that gates the stored data (gx_suite.py), so the two can never disagree about what "valid" means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DType = Literal["int", "float", "str", "timestamp"]

# Pandas dtypes each contract dtype is stored with (nullable integers keep NA without turning into floats).
PANDAS_DTYPES: dict[str, str] = {
    "int": "Int64",
    "float": "float64",
    "str": "string",
    "timestamp": "datetime64[ns, UTC]",
}
NULL_TOKENS = frozenset({"", "NA", "NaN", "nan", "null", "NULL", "None"})
NYC_ORIGINS = frozenset({"EWR", "JFK", "LGA"})


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    required: bool = False
    min: float | None = None
    max: float | None = None
    allowed: frozenset[str] | None = None
    # Name of a reference set supplied at validation time (e.g. carriers from raw/airlines).
    allowed_from: str | None = None
    pattern: str | None = None
    description: str = ""


@dataclass(frozen=True)
class TableContract:
    name: str
    columns: tuple[Column, ...]
    unique_key: tuple[str, ...]
    # Columns that place a row in a daily partition: local calendar date and a UTC timestamp.
    partition_date_columns: tuple[str, str, str] | None = None
    partition_timestamp: str | None = None
    description: str = ""
    references: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for candidate in self.columns:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


FLIGHTS = TableContract(
    name="flights",
    description="Every scheduled departure from JFK, LGA and EWR, one file per local departure day.",
    columns=(
        Column("year", "int", required=True, min=2000, max=2100),
        Column("month", "int", required=True, min=1, max=12),
        Column("day", "int", required=True, min=1, max=31),
        Column("dep_time", "int", min=1, max=2400, description="Actual departure, local HHMM"),
        Column(
            "sched_dep_time",
            "int",
            required=True,
            min=0,
            max=2359,
            description="Scheduled departure, local HHMM",
        ),
        Column("dep_delay", "float", min=-240, max=2880, description="Departure delay, minutes"),
        Column("arr_time", "int", min=1, max=2400, description="Actual arrival, destination-local HHMM"),
        Column("sched_arr_time", "int", required=True, min=0, max=2359),
        Column(
            "arr_delay",
            "float",
            min=-240,
            max=2880,
            description="Arrival delay, minutes (the label's source)",
        ),
        Column("carrier", "str", required=True, allowed_from="carriers"),
        Column("flight", "int", required=True, min=1, max=9999),
        Column("tailnum", "str", pattern=r"^N[A-Z0-9]{1,5}$"),
        Column("origin", "str", required=True, allowed=NYC_ORIGINS),
        Column("dest", "str", required=True, pattern=r"^[A-Z]{3}$"),
        Column("air_time", "float", min=1, max=1000),
        Column("distance", "float", required=True, min=1, max=6000),
        Column("hour", "int", required=True, min=0, max=23),
        Column("minute", "int", required=True, min=0, max=59),
        Column("time_hour", "timestamp", required=True, description="Scheduled departure hour, UTC"),
    ),
    unique_key=("carrier", "flight", "year", "month", "day", "sched_dep_time"),
    partition_date_columns=("year", "month", "day"),
    partition_timestamp="time_hour",
    references=("carriers",),
)

WEATHER = TableContract(
    name="weather",
    description="Hourly weather observed at the three New York origins, one file per local day.",
    columns=(
        Column("origin", "str", required=True, allowed=NYC_ORIGINS),
        Column("year", "int", required=True, min=2000, max=2100),
        Column("month", "int", required=True, min=1, max=12),
        Column("day", "int", required=True, min=1, max=31),
        Column("hour", "int", required=True, min=0, max=23),
        Column("temp", "float", min=-60, max=130, description="Fahrenheit"),
        Column("dewp", "float", min=-80, max=100, description="Fahrenheit"),
        Column("humid", "float", min=0, max=100, description="Relative humidity, %"),
        Column("wind_dir", "float", min=0, max=360, description="Degrees"),
        Column("wind_speed", "float", min=0, max=150, description="mph"),
        Column("wind_gust", "float", min=0, max=200, description="mph"),
        Column("precip", "float", min=0, max=10, description="Inches"),
        Column("pressure", "float", min=850, max=1100, description="Millibars"),
        Column("visib", "float", min=0, max=100, description="Miles"),
        Column("time_hour", "timestamp", required=True, description="Hour of the observation, UTC"),
    ),
    unique_key=("origin", "time_hour"),
    partition_date_columns=("year", "month", "day"),
    partition_timestamp="time_hour",
)

AIRLINES = TableContract(
    name="airlines",
    description="Carrier codes and names.",
    columns=(
        Column("carrier", "str", required=True, pattern=r"^[A-Z0-9]{2}$"),
        Column("name", "str", required=True),
    ),
    unique_key=("carrier",),
)

AIRPORTS = TableContract(
    name="airports",
    description="FAA airport codes with location and time zone.",
    columns=(
        Column("faa", "str", required=True, pattern=r"^[A-Z0-9]{3,4}$"),
        Column("name", "str", required=True),
        Column("lat", "float", required=True, min=-90, max=90),
        Column("lon", "float", required=True, min=-180, max=180),
        Column("alt", "float", min=-2000, max=30000, description="Feet"),
        Column("tz", "float", min=-12, max=14, description="Offset from UTC, hours"),
        Column("dst", "str", allowed=frozenset({"A", "U", "N"})),
        Column("tzone", "str", description="IANA time zone"),
    ),
    unique_key=("faa",),
)

PLANES = TableContract(
    name="planes",
    description="Aircraft by tail number.",
    columns=(
        Column("tailnum", "str", required=True),
        Column("year", "int", min=1900, max=2100, description="Year manufactured"),
        Column("type", "str"),
        Column("manufacturer", "str"),
        Column("model", "str"),
        Column("engines", "int", min=0, max=8),
        Column("seats", "int", min=0, max=1000),
        Column("speed", "float", min=0, max=1000),
        Column("engine", "str"),
    ),
    unique_key=("tailnum",),
)

DAILY_TABLES: dict[str, TableContract] = {"flights": FLIGHTS, "weather": WEATHER}
REFERENCE_TABLES: dict[str, TableContract] = {"airlines": AIRLINES, "airports": AIRPORTS, "planes": PLANES}
