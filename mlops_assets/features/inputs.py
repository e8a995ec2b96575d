"""What the flight-features job reads: fct_flights over the delay history's lookback and stg_weather over
the day before, from the `warehouse` resource (mlops_assets/resources/warehouse.py).

The DuckDB file locally, PostgreSQL in production, both read into Arrow with the same schema on the
driver and handed to Spark, so the features do not depend on the warehouse. (Spark's own JDBC reader
would need the PostgreSQL JDBC jar, which pyspark does not ship and this platform does not download.)
"""

import datetime as dt
from pathlib import Path

from mlops_assets.resources.warehouse import Warehouse, as_warehouse

FLIGHT_COLUMNS = (
    "flight_id",
    "flight_date",
    "carrier",
    "origin",
    "dest",
    "distance",
    "sched_dep_local",
    "sched_dep_utc",
    "arrived_at_utc",
    "arr_delay",
    "plane_year_built",
    "plane_seats",
)
WEATHER_KEY_COLUMNS = ("origin", "weather_date", "observed_hour_utc", "available_at_utc")
WEATHER_LOOKBACK_DAYS = 1  # the 3-hour windows of the first hours of the window


def read_warehouse_inputs(warehouse: Warehouse | Path, first: dt.date, last: dt.date):
    """(flights, weather) as Arrow tables from the warehouse (DuckDB or PostgreSQL, same schema)."""
    from mlops_assets.features.flight_features import WEATHER_COLUMNS, input_window

    source = as_warehouse(warehouse)
    low, high = input_window(first, last)
    weather_low = first - dt.timedelta(days=WEATHER_LOOKBACK_DAYS)
    weather_columns = [*WEATHER_KEY_COLUMNS, *WEATHER_COLUMNS.values()]
    flights = source.read_table("marts.fct_flights", FLIGHT_COLUMNS, "flight_date", low, high)
    weather = source.read_table("staging.stg_weather", weather_columns, "weather_date", weather_low, last)
    return flights, weather
