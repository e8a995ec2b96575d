"""Where a table's files lie: the landed CSV in the landing zone and the accepted Parquet in the lake.

Daily tables (`raw/flights`, `raw/weather`) land as one file per partition, `<table>/<YYYY-MM-DD>.csv`;
reference tables (`raw/airlines`, `raw/airports`, `raw/planes`) as `reference/<table>.csv`.
"""


def landing_key(table: str, partition: str | None) -> str:
    return f"reference/{table}.csv" if partition is None else f"{table}/{partition}.csv"


def lake_key(table: str, partition: str | None) -> str:
    return f"raw/{table}.parquet" if partition is None else f"raw/{table}/{partition}.parquet"
