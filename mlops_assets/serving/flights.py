"""A flight as a client names it, checked, and the Feast entity row that finds its features.

The key of a flight is what fct_flights builds (dbt/models/marts/fct_flights.sql, dbt/macros/time.sql):
`flight_id = "{carrier}-{flight_number}-{origin}-{YYYYMMDDTHHMMZ}"`, the scheduled departure in UTC to
the minute, and `route = "{origin}-{dest}"`. A scheduled departure without a time zone is New York local
time (as `sched_dep_time` is in the data); one with an offset is converted.

Two layers of checks, both answered as FastAPI's 422 body (`detail: [{type, loc, msg, input}]`):
- structure and static domain (pydantic): types, code shapes, origin in EWR/JFK/LGA, a departure inside
  the data's days (2013-01-01..2013-12-31, New York days, the partitions of the lake);
- the reference tables (`KnownCodes`): carrier in raw/airlines, destination in raw/airports, read from
  the lake when the service starts (a request model cannot see them).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from mlops_assets.lib.calendar import FIRST_DAY, LAST_DAY, LOCAL_TZ

WALL_MARGIN = dt.timedelta(days=2)  # how far a departure's own wall-clock day can be from its New York day
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
ORIGINS = ("EWR", "JFK", "LGA")
DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt" / "dbt_project.yml"
EXAMPLE = {
    "carrier": "UA",
    "flight_number": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "scheduled_departure": "2013-03-15T05:15:00",
}


class FlightRequest(BaseModel):
    """One scheduled flight out of New York."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    carrier: Annotated[
        str, Field(pattern=r"^[A-Z0-9]{2}$", description="Two-character carrier code (raw/airlines).")
    ]
    # strict: a JSON number only, never "123" or true (a string here is a client bug worth reporting)
    flight_number: Annotated[int, Field(strict=True, gt=0, le=9999, description="Flight number.")]
    origin: Annotated[Literal["EWR", "JFK", "LGA"], Field(description="New York origin airport.")]
    dest: Annotated[str, Field(pattern=r"^[A-Z0-9]{3}$", description="Destination FAA code (raw/airports).")]
    scheduled_departure: Annotated[
        dt.datetime,
        Field(
            description=(
                "Scheduled departure, ISO 8601 to the minute. Without an offset: New York local time; "
                "with one (`Z`, `-05:00`): that instant. Must fall on a day of the data (New York days "
                f"{FIRST_DAY}..{LAST_DAY})."
            )
        ),
    ]

    @field_validator("carrier", "origin", "dest", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        """Codes are case-insensitive on the way in; a non-string is left to the type check."""
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("scheduled_departure", mode="before")
    @classmethod
    def _a_time_of_day(cls, value: Any) -> Any:
        # pydantic alone would take a bare date (midnight) or a number, even one in a string (Unix
        # seconds: "1358683200.0" is 2013-01-20 12:00Z): none names a departure, and each would silently
        # look up a flight that does not exist, or the wrong one.
        if isinstance(value, str):
            text = value.strip()
            if len(text) <= 10:
                raise PydanticCustomError(
                    "datetime_without_time", "a departure needs a date and a time, e.g. 2013-03-15T05:15"
                )
            if text[4:5] != "-" and _NUMBER.fullmatch(text):  # "YYYY-" is never a number
                raise _not_a_number_error()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            raise _not_a_number_error()
        return value

    @field_validator("scheduled_departure")
    @classmethod
    def _inside_the_data(cls, value: dt.datetime) -> dt.datetime:
        """Normalized to UTC; its New York day must be a partition of the data."""
        if value.second or value.microsecond:
            raise PydanticCustomError(
                "datetime_not_whole_minute", "scheduled departures are whole minutes (no seconds)"
            )
        # Checked on the wall clock as given before any conversion, which would overflow at the ends of
        # Python's range (0001-01-01T01:00Z, 9999-12-31T23:59-05:00); an offset (under 24 h) and New York's
        # own move the day by less than WALL_MARGIN.
        if not FIRST_DAY - WALL_MARGIN <= value.date() <= LAST_DAY + WALL_MARGIN:
            raise _outside_error(value.isoformat(timespec="minutes"))
        local = _as_new_york(value)
        if not FIRST_DAY <= local.date() <= LAST_DAY:
            raise _outside_error(f"{local:%Y-%m-%d %H:%M} New York time")
        return local.astimezone(dt.UTC)

    # ---- keys of the feature store -------------------------------------------------------------------
    @property
    def flight_id(self) -> str:
        return f"{self.carrier}-{self.flight_number}-{self.origin}-{self.scheduled_departure:%Y%m%dT%H%MZ}"

    @property
    def local_day(self) -> str:
        """The New York day of the departure: the data's partition (and the prediction log's folder)."""
        return self.scheduled_departure.astimezone(LOCAL_TZ).date().isoformat()

    def entity_row(self) -> dict[str, str]:
        """The join keys of every view of the feature service flight_delay_v1."""
        return {
            "flight_id": self.flight_id,
            "carrier": self.carrier,
            "origin": self.origin,
            "dest": self.dest,
            "route": f"{self.origin}-{self.dest}",
        }


def _as_new_york(value: dt.datetime) -> dt.datetime:
    """An aware New York time. A naive wall clock that New York skipped (spring forward) or lived twice
    (fall back) names no single instant: refused, asking for an offset, rather than guessed.

    PEP 495: the two folds of such a wall clock have different offsets; in a gap fold 0 takes the offset
    before the transition (EST, the smaller), in a repeated hour the earlier one (EDT, the larger)."""
    if value.tzinfo is not None:
        return value.astimezone(LOCAL_TZ)
    local = value.replace(tzinfo=LOCAL_TZ)
    first, second = local.utcoffset(), local.replace(fold=1).utcoffset()
    if first == second:
        return local
    wall = f"{value:%Y-%m-%dT%H:%M}"
    if first > second:
        raise PydanticCustomError(
            "datetime_ambiguous",
            "{wall} happened twice in New York (clocks went back an hour): give the offset, "
            "{wall}{first} (EDT, the first) or {wall}{second} (EST, the second)",
            {"wall": wall, "first": _offset(first), "second": _offset(second)},
        )
    instants = [
        (offset, value.replace(tzinfo=dt.timezone(offset)).astimezone(LOCAL_TZ)) for offset in (first, second)
    ]
    readings = [f"{wall}{_offset(offset)} is {local:%H:%M %Z}" for offset, local in instants]
    raise PydanticCustomError(
        "datetime_nonexistent",
        "{wall} does not exist in New York (clocks jumped forward an hour): give the offset ({readings})",
        {"wall": wall, "readings": ", ".join(readings)},
    )


def _offset(offset: dt.timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _outside_error(when: str) -> PydanticCustomError:
    return PydanticCustomError(
        "date_outside_data",
        "{when} is outside the data: departures from {first} to {last} (New York days)",
        {"when": when, "first": str(FIRST_DAY), "last": str(LAST_DAY)},
    )


def _not_a_number_error() -> PydanticCustomError:
    return PydanticCustomError(
        "datetime_type", "give the departure as an ISO 8601 string, e.g. 2013-03-15T05:15 (not a number)"
    )


def batch_request_model(max_flights: int) -> type[BaseModel]:
    """`{"flights": [...]}` with 1..max_flights flights (the limit is the service's setting)."""
    flights = Annotated[
        list[FlightRequest],
        Field(min_length=1, max_length=max_flights, description=f"1 to {max_flights} flights."),
    ]
    return create_model(
        "BatchRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [{"flights": [EXAMPLE]}]}),
        flights=(flights, ...),
    )


# ---- the reference tables ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownCodes:
    """Carriers and destination airports a request may name."""

    carriers: frozenset[str]
    airports: frozenset[str]

    def errors(self, flights: Sequence[FlightRequest], batch: bool) -> list[dict[str, Any]]:
        """422 entries (FastAPI's shape) for every flight that names an unknown carrier or airport."""
        found = []
        for index, flight in enumerate(flights):
            at = flight_loc(index, batch)
            if flight.carrier not in self.carriers:
                found.append(_error("unknown_carrier", [*at, "carrier"], flight.carrier, "carrier"))
            if flight.dest not in self.airports:
                found.append(_error("unknown_airport", [*at, "dest"], flight.dest, "airport"))
        return found


def flight_loc(index: int, batch: bool) -> list[str | int]:
    """Where a flight is in the request body, as FastAPI's 422 `loc` says it."""
    return ["body", "flights", index] if batch else ["body"]


def _error(kind: str, loc: list, value: str, what: str) -> dict[str, Any]:
    table = "raw/airlines" if what == "carrier" else "raw/airports"
    return {"type": kind, "loc": loc, "msg": f"unknown {what} {value!r}: not in {table}", "input": value}


def load_known_codes(lake, extra: dict[str, Iterable[str]] | None = None) -> KnownCodes:
    """raw/airlines and raw/airports of the lake, plus the destinations the dbt project adds
    (`airport_fallbacks`: airports fct_flights knows but the airports table lacks), plus `extra`
    (the model's own vocabulary)."""
    carriers = set(lake.read_parquet("raw/airlines.parquet")["carrier"].dropna().astype(str))
    airports = set(lake.read_parquet("raw/airports.parquet")["faa"].dropna().astype(str))
    airports |= _dbt_airport_fallbacks()
    for column, values in (extra or {}).items():
        (carriers if column == "carrier" else airports).update(str(v) for v in values)
    return KnownCodes(carriers=frozenset(carriers), airports=frozenset(airports))


def _dbt_airport_fallbacks() -> set[str]:
    import yaml

    if not DBT_PROJECT.exists():
        return set()
    project = yaml.safe_load(DBT_PROJECT.read_text())
    return set((project.get("vars") or {}).get("airport_fallbacks") or {})
