"""The warehouse dbt builds and the features stage reads: one resource, a DuckDB and a PostgreSQL side.

- `DuckDBWarehouse` (local profile, dbt target `local`): dbt-duckdb reads the lake's Parquet in place
  (`external_location`), so there is nothing to load; reads go DuckDB -> Arrow.
- `PostgresWarehouse` (production profile, dbt target `production`): the raw sources are tables in schema
  `raw`, loaded from the lake before each `dbt build`; reads go psycopg2 -> Arrow, same column types.

Loading is idempotent per partition: the rows of the days being loaded are deleted, then each day's file is
COPYed in, all in one transaction, so a re-run of a partition never duplicates rows and a reader never sees
a half-loaded day. Each loaded row carries the day of its lake file (`_lake_day`); reference tables are
replaced whole. Reads return Arrow tables whose schema does not depend on the warehouse (UTC timestamps
as `timestamp[us, tz=UTC]`, dates as `date32`, integers at their SQL width), so every consumer, Spark
included, sees the same data from either side. Heavy libraries (duckdb, psycopg2, pyarrow) are imported
inside the methods.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from mlops_assets.lib.settings import Settings, env_setting
from mlops_assets.resources.storage import ObjectStore

RAW_SCHEMA = "raw"
DAILY_RAW_TABLES = ("flights", "weather")
REFERENCE_RAW_TABLES = ("airlines", "airports", "planes")
# Added to every loaded row of a daily table: the day of the lake file it came from, so that a re-load
# deletes exactly what that file put there (whatever the row's own columns say).
LAKE_DAY_COLUMN = "_lake_day"
FETCH_BATCH_ROWS = 50_000
# PostgreSQL type OIDs -> Arrow types, matching what DuckDB's Arrow export gives for the same SQL types.
PG_ARROW_TYPES = {
    16: "bool",
    20: "int64",
    21: "int16",
    23: "int32",
    700: "float32",
    701: "float64",
    25: "string",
    1042: "string",
    1043: "string",
    1082: "date32",
    1114: "timestamp",
    1184: "timestamptz",
}


class Warehouse(dg.ConfigurableResource):
    """Interface shared by the DuckDB and PostgreSQL warehouses."""

    def describe(self) -> str:
        """Where the warehouse is, for metadata and logs (no secrets)."""
        raise NotImplementedError

    def load_raw(self, tables: Sequence[str], days: Sequence[dt.date] | None = None) -> dict[str, int]:
        """Make the raw sources of `tables` match the lake: for `days` of daily tables, or the whole of
        reference tables (`days` None). Returns the rows loaded per table ({} when nothing is copied)."""
        raise NotImplementedError

    def query_arrow(self, sql: str, params: Sequence[Any] = ()):
        """A query's result as a pyarrow.Table; `?` marks a parameter on every warehouse."""
        raise NotImplementedError

    # ---- reads shared by both sides (portable SQL) ------------------------------------------------------
    def read_table(
        self,
        relation: str,
        columns: Sequence[str],
        date_column: str | None = None,
        first: dt.date | None = None,
        last: dt.date | None = None,
    ):
        """`columns` of `relation` (e.g. marts.fct_flights), for date_column in [first, last] if given."""
        sql = f"select {', '.join(columns)} from {relation}"
        params: list[Any] = []
        if date_column:
            sql += f" where {date_column} between ? and ?"
            params = [first, last]
        return self.query_arrow(sql, params)

    def row_counts(
        self, relation: str, date_column: str | None = None, first: dt.date | None = None, last=None
    ) -> tuple[int, list[tuple[str, int]]]:
        """Total rows of `relation`, and rows per day of date_column in [first, last] if given."""
        total = self.query_arrow(f"select count(*) as n from {relation}").column("n")[0].as_py()
        if not date_column:
            return total, []
        per_day = self.query_arrow(
            f"select cast({date_column} as varchar) as day, count(*) as n from {relation} "
            f"where {date_column} between ? and ? group by 1 order by 1",
            [first, last],
        )
        days, counts = per_day.column("day").to_pylist(), per_day.column("n").to_pylist()
        return total, list(zip(days, counts, strict=True))


class DuckDBWarehouse(Warehouse):
    """The local profile's DuckDB file; dbt reads the lake's Parquet in place, so there is nothing to load."""

    path: str = Field(description="The DuckDB file of dbt's `local` target (<MLOPS_HOME>/warehouse.duckdb).")

    def describe(self) -> str:
        return f"duckdb {self.path}"

    def load_raw(self, tables: Sequence[str], days: Sequence[dt.date] | None = None) -> dict[str, int]:
        return {}

    def query_arrow(self, sql: str, params: Sequence[Any] = ()):
        with self._connect() as con:
            con.execute("set TimeZone = 'UTC'")
            return con.sql(sql, params=list(params) or None).to_arrow_table()

    def _connect(self):
        """A read-only connection; dbt holds the single writer's lock while it builds, so wait a little.

        Relative Parquet paths in the views resolve against dbt/: a `dbt build` typed in dbt/ with no
        MLOPS_HOME creates its views over `../data/lake/...`, which would otherwise resolve against
        whichever folder the reader runs in."""
        import duckdb

        from mlops_assets.transform.dbt_project import DBT_PROJECT_DIR

        for attempt in range(5):
            try:
                return duckdb.connect(
                    self.path, read_only=True, config={"file_search_path": str(DBT_PROJECT_DIR)}
                )
            except duckdb.IOException:
                if attempt == 4:
                    raise
                time.sleep(2 * (attempt + 1))
        raise AssertionError("unreachable")


class PostgresWarehouse(Warehouse):
    """PostgreSQL (dbt's `production` target): raw tables loaded from the lake, models built by dbt-postgres.

    The connection settings are those dbt's profile reads (DBT_PG_HOST, ...), passed in by the definitions.
    """

    host: str = Field(default="localhost", description="PostgreSQL host (DBT_PG_HOST).")
    port: int = Field(default=5432, description="PostgreSQL port (DBT_PG_PORT).")
    user: str = Field(default="mlops", description="PostgreSQL user (DBT_PG_USER).")
    password: str | None = Field(default=None, description="Password (DBT_PG_PASSWORD); None: .pgpass/trust.")
    dbname: str = Field(default="mlops", description="Database (DBT_PG_DBNAME).")
    lake: ObjectStore = Field(description="The validated lake the raw tables are loaded from.")
    raw_schema: str = Field(default=RAW_SCHEMA, description="Schema of the raw tables (dbt source `raw`).")

    def describe(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def _connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=self.dbname,
            connect_timeout=10,
            # UTC session: timestamptz values come back as UTC instants, as from DuckDB.
            options="-c TimeZone=UTC",
        )

    # ---- loading --------------------------------------------------------------------------------------
    def load_raw(self, tables: Sequence[str], days: Sequence[dt.date] | None = None) -> dict[str, int]:
        from mlops_assets.ingestion.layout import lake_key

        files = {
            table: [(lake_key(table, None), None)]
            if days is None
            else [(lake_key(table, day.isoformat()), day) for day in days]
            for table in tables
        }
        missing = [key for pairs in files.values() for key, _ in pairs if not self.lake.exists(key)]
        if missing:
            raise FileNotFoundError(f"not in the lake {self.lake.uri('')}: {', '.join(missing)}")
        connection = self._connect()
        try:
            with connection, connection.cursor() as cursor:  # one transaction: commit on success only
                cursor.execute(f'create schema if not exists "{self.raw_schema}"')
                return {table: self._load_table(cursor, table, pairs, days) for table, pairs in files.items()}
        finally:
            connection.close()

    def _load_table(self, cursor, table: str, files: list[tuple[str, dt.date | None]], days) -> int:
        """Delete the days (or everything, for a reference table), then COPY each file in."""
        relation = f'"{self.raw_schema}"."{table}"'
        loaded = 0
        for index, (key, day) in enumerate(files):
            data = self._arrow_for_copy(key, day)
            if index == 0:
                cursor.execute(f"create table if not exists {relation} ({postgres_columns(data.schema)})")
                if days is None:
                    cursor.execute(f"delete from {relation}")
                else:
                    cursor.execute(f"delete from {relation} where {LAKE_DAY_COLUMN} = any(%s)", (list(days),))
            names = ", ".join(f'"{name}"' for name in data.schema.names)
            cursor.copy_expert(f"copy {relation} ({names}) from stdin with (format csv)", csv_buffer(data))
            loaded += data.num_rows
        return loaded

    def _arrow_for_copy(self, key: str, day: dt.date | None):
        """The lake file as Arrow, timestamps at PostgreSQL's microsecond resolution, plus the lake day."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = pq.read_table(io.BytesIO(self.lake.read_bytes(key)))
        for i, field in enumerate(data.schema):
            if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
                # PostgreSQL keeps microseconds; the lake's timestamps are whole hours.
                column = data.column(i).cast(pa.timestamp("us", tz=field.type.tz), safe=False)
                data = data.set_column(i, field.name, column)
        if day is not None:
            data = data.append_column(LAKE_DAY_COLUMN, pa.array([day] * data.num_rows, pa.date32()))
        return data

    # ---- reading --------------------------------------------------------------------------------------
    def query_arrow(self, sql: str, params: Sequence[Any] = ()):
        """Streams the result through a server-side cursor into Arrow, typed from the result's column OIDs."""
        import pyarrow as pa

        connection = self._connect()
        try:
            with connection, connection.cursor(name="mlops_read") as cursor:
                cursor.itersize = FETCH_BATCH_ROWS
                # No params: no %-formatting by psycopg2 either, so the SQL is sent as written.
                cursor.execute(sql.replace("?", "%s"), list(params) or None)
                batches, rows = [], cursor.fetchmany(FETCH_BATCH_ROWS)
                schema = arrow_schema(cursor.description)
                while rows:
                    batches.append(rows_to_batch(rows, schema))
                    rows = cursor.fetchmany(FETCH_BATCH_ROWS)
        finally:
            connection.close()
        return pa.Table.from_batches(batches, schema=schema)


def postgres_columns(schema) -> str:
    """A CREATE TABLE column list for an Arrow schema (the raw contracts' types)."""
    import pyarrow as pa

    def sql_type(kind) -> str:
        checks = [
            (pa.types.is_boolean, "boolean"),
            (pa.types.is_int16, "smallint"),
            (pa.types.is_int32, "integer"),
            (pa.types.is_int64, "bigint"),
            (pa.types.is_float32, "real"),
            (pa.types.is_float64, "double precision"),
            (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "text"),
            (pa.types.is_date32, "date"),
        ]
        if pa.types.is_timestamp(kind):
            return "timestamp with time zone" if kind.tz else "timestamp"
        for check, name in checks:
            if check(kind):
                return name
        raise TypeError(f"no PostgreSQL type for Arrow type {kind}")

    return ", ".join(f'"{field.name}" {sql_type(field.type)}' for field in schema)


def csv_buffer(data) -> io.BytesIO:
    """CSV for COPY: every non-null value quoted, nulls unquoted and empty, which is how PostgreSQL's CSV
    format tells NULL from an empty string."""
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    pacsv.write_csv(data, buffer, write_options=options)
    buffer.seek(0)
    return buffer


def arrow_schema(description) -> Any:
    """The Arrow schema of a psycopg2 result description."""
    import pyarrow as pa

    types = {
        "bool": pa.bool_(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "string": pa.string(),
        "date32": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
    }
    fields = []
    for column in description:
        name = PG_ARROW_TYPES.get(column.type_code)
        if name is None:
            raise TypeError(f"column {column.name}: no Arrow type for PostgreSQL type OID {column.type_code}")
        fields.append(pa.field(column.name, types[name]))
    return pa.schema(fields)


def rows_to_batch(rows: list[tuple], schema):
    """psycopg2 rows -> a RecordBatch of `schema` (aware datetimes become UTC instants)."""
    import pyarrow as pa

    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def as_warehouse(warehouse: Warehouse | Path) -> Warehouse:
    """A warehouse resource; a path is the local profile's DuckDB file (as tests and scripts pass it)."""
    return warehouse if isinstance(warehouse, Warehouse) else DuckDBWarehouse(path=str(warehouse))


def warehouse_resource(settings: Settings, lake: ObjectStore) -> Warehouse:
    """The warehouse of a profile. Production reads dbt's own DBT_PG_* variables (EnvVar: resolved when a
    run starts; the defaults are those of dbt/profiles.yml) and loads from the production lake."""
    if settings.profile == "local":
        return DuckDBWarehouse(path=str(settings.home / "warehouse.duckdb"))  # as in dbt/profiles.yml

    return PostgresWarehouse(
        host=env_setting("DBT_PG_HOST", "localhost"),
        port=env_setting("DBT_PG_PORT", 5432, dg.EnvVar.int),
        user=env_setting("DBT_PG_USER", "mlops"),
        password=env_setting("DBT_PG_PASSWORD"),
        dbname=env_setting("DBT_PG_DBNAME", "mlops"),
        lake=lake,
    )
