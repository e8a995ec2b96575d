"""The production warehouse and offline store, end to end on real services on this machine.

Two real days are replayed into an S3 landing zone (moto's server over HTTP), ingested by the
production Definitions into the S3 lake, loaded into the `raw` schema of a fresh PostgreSQL database and
built there by dbt-postgres, with every dbt test as a Dagster asset check. The same days built on the
local profile (DuckDB) are the reference: fct_flights, the Spark features and the Feast training set
(whose offline source is on S3 in production) must be equal, and re-running a partition must not
duplicate a row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_assets.lib.calendar import days_between, partition_range_tags
from mlops_assets.resources.warehouse import DuckDBWarehouse, PostgresWarehouse
from tests import s3_server
from tests.test_dbt import DAILY_MODELS, REFERENCE_MODELS, check_outcomes
from tests.test_production_profile import PG, _pg_connect

s3_endpoint = s3_server.s3_endpoint

pytestmark = pytest.mark.slow

DAYS = ("2013-01-01", "2013-01-02")
FLIGHTS = {"2013-01-01": 842, "2013-01-02": 943}  # accepted raw flights per day
RAW_REFERENCE = ("raw/airlines", "raw/airports", "raw/planes")
RAW_DAILY = ("raw/flights", "raw/weather")
FEATURES = "features/flight_features"
TRAINING = ("2013-01-02", "2013-01-02")  # labelled flights of day 2; day 1 is the features' history


@dataclass(frozen=True)
class Production:
    defs: dg.Definitions
    bucket: s3_server.S3Bucket
    database: str
    home: Path

    def run(self, selection, **kwargs) -> dg.ExecuteInProcessResult:
        """The production Definitions' own job, in process, on the selected keys."""
        job = self.defs.resolve_implicit_global_asset_job_def()
        keys = [dg.AssetKey.from_user_string(key) for key in selection]
        return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), asset_selection=keys, **kwargs)

    def resource(self, key: str):
        """A resource of the Definitions, resolved from this environment (EnvVars) as a run would."""
        with dg.build_resources({key: self.defs.resources[key]}) as built:
            return getattr(built, key)


def _set_fake_aws(patch: pytest.MonkeyPatch) -> None:
    for name in s3_server.UNSET:
        patch.delenv(name, raising=False)
    for name, value in s3_server.FAKE_CREDENTIALS.items():
        patch.setenv(name, value)
    patch.setenv("AWS_CONFIG_FILE", s3_server.NO_FILE)
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", s3_server.NO_FILE)


@contextlib.contextmanager
def fresh_database(prefix: str = "mlops_wh") -> Iterator[str]:
    """A new database on the machine's PostgreSQL server, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with contextlib.closing(_pg_connect("postgres")) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def production(s3_endpoint, tmp_path_factory) -> Iterator[Production]:
    """A production deployment's environment: a fresh bucket, a fresh PostgreSQL database for the
    warehouse (dbt's own DBT_PG_* variables), MLOPS_HOME as scratch space only."""
    from mlops_assets.definitions import build_definitions

    home = tmp_path_factory.mktemp("production_home")
    with pytest.MonkeyPatch.context() as patch, fresh_database() as database:
        _set_fake_aws(patch)
        bucket = s3_server.S3Bucket(endpoint=s3_endpoint, name=f"mlops-wh-{uuid.uuid4().hex[:12]}")
        s3_endpoint.client().create_bucket(Bucket=bucket.name)
        settings = {
            "MLOPS_PROFILE": "production",
            "MLOPS_S3_BUCKET": bucket.name,
            "MLOPS_S3_ENDPOINT_URL": s3_endpoint.url,
            "MLOPS_HOME": str(home),
            "DBT_PG_HOST": PG["host"],
            "DBT_PG_PORT": str(PG["port"]),
            "DBT_PG_USER": PG["user"],
            "DBT_PG_PASSWORD": "",  # trust auth on this machine
            "DBT_PG_DBNAME": database,
            "DBT_TARGET_PATH": str(home / "dbt-target"),
        }
        for name, value in settings.items():
            patch.setenv(name, value)
        yield Production(build_definitions.__wrapped__(), bucket, database, home)


@pytest.fixture(scope="module")
def built(production: Production) -> dict[str, dg.ExecuteInProcessResult]:
    """Replay -> raw assets on S3 -> raw tables in PostgreSQL -> dbt build on PostgreSQL."""
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.replay import replay
    from mlops_assets.resources.profiles import build_resources
    from mlops_assets.resources.storage import resolve_store

    landing = resolve_store(build_resources(load_settings())["landing_zone"])
    replay(landing, *(dt.date.fromisoformat(day) for day in DAYS))
    window = partition_range_tags(*DAYS)
    results = {
        "raw_reference": production.run(RAW_REFERENCE),
        "raw_daily": production.run(RAW_DAILY, tags=window),
        "dbt_reference": production.run(REFERENCE_MODELS),
        "dbt_daily": production.run(DAILY_MODELS, tags=window),
    }
    assert all(result.success for result in results.values())
    return results


@pytest.fixture(scope="module")
def local_home(tmp_path_factory) -> Path:
    """The same days on the local profile: the lake and the DuckDB warehouse."""
    from tests.conftest import build_real_warehouse

    home = tmp_path_factory.mktemp("local_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_PROFILE", "local")  # whatever the production fixture has set
        build_real_warehouse(home, DAYS)
    return home


def materialization_metadata(result: dg.ExecuteInProcessResult, *key: str) -> dict:
    """The metadata of an asset's materialization (a run over a window has one per day, all alike)."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]
    return {name: value.value for name, value in events[0].materialization.metadata.items()}


def _sorted(table, keys: list[str]) -> pd.DataFrame:
    return table.to_pandas().sort_values(keys).reset_index(drop=True)


def _raw_rows_per_day(warehouse: PostgresWarehouse, table: str) -> dict[str, int]:
    first, last = (dt.date.fromisoformat(day) for day in DAYS)
    return dict(warehouse.row_counts(f"raw.{table}", "_lake_day", first, last)[1])


def test_dbt_builds_on_postgres_with_passing_checks_and_equals_duckdb(production, built, local_home):
    # Every dbt test of every model ran as an asset check, on PostgreSQL, and passed.
    checks = {**check_outcomes(built["dbt_reference"]), **check_outcomes(built["dbt_daily"])}
    graph = production.defs.resolve_asset_graph()
    models = {dg.AssetKey(m) for m in REFERENCE_MODELS + DAILY_MODELS}
    expected = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.get_check_keys_for_assets(models)}
    assert set(checks) == expected and len(expected) >= 25
    assert all(checks.values()), sorted(name for name, passed in checks.items() if not passed)
    assert set(graph.get(dg.AssetKey("fct_flights")).kinds) == {"dbt", "postgres"}

    # The raw sources were loaded from the S3 lake, and the counts are in the metadata.
    warehouse = production.resource("warehouse")
    assert isinstance(warehouse, PostgresWarehouse) and warehouse.dbname == production.database
    lake_weather = sum(
        len(pd.read_parquet(io.BytesIO(production.bucket.get(f"lake/raw/weather/{day}.parquet"))))
        for day in FLIGHTS
    )
    daily = built["dbt_daily"]
    assert materialization_metadata(daily, "stg_flights")["raw_rows_loaded"] == {
        "flights": sum(FLIGHTS.values())
    }
    assert materialization_metadata(daily, "stg_weather")["raw_rows_loaded"] == {"weather": lake_weather}
    assert materialization_metadata(built["dbt_reference"], "stg_planes")["raw_rows_loaded"] == {
        "planes": 3322
    }
    facts = materialization_metadata(daily, "fct_flights")
    assert facts["dagster/row_count"] == facts["rows_in_window"] == sum(FLIGHTS.values())
    assert _raw_rows_per_day(warehouse, "flights") == FLIGHTS

    # Row for row, column type for column type, what DuckDB builds from the same days.
    duck = DuckDBWarehouse(path=str(local_home / "warehouse.duckdb"))
    for relation, keys in (
        ("marts.fct_flights", ["flight_id"]),
        ("staging.stg_weather", ["origin", "observed_hour_utc"]),
        ("staging.stg_planes", ["tailnum"]),
    ):
        on_postgres, on_duckdb = warehouse.read_table(relation, ["*"]), duck.read_table(relation, ["*"])
        assert on_postgres.schema == on_duckdb.schema, relation
        assert on_postgres.num_rows > 0
        pd.testing.assert_frame_equal(_sorted(on_postgres, keys), _sorted(on_duckdb, keys))


def test_rerunning_a_partition_replaces_its_rows(production, built):
    warehouse = production.resource("warehouse")
    before = {t: _raw_rows_per_day(warehouse, t) for t in ("flights", "weather")}
    with contextlib.closing(_pg_connect(production.database)) as connection, connection.cursor() as cursor:
        # Leftovers of an earlier load of the day: a raw row and a fact that the lake no longer has.
        cursor.execute(
            "insert into raw.flights (year, month, day, carrier, flight, origin, _lake_day) "
            "values (2013, 1, 2, 'ZZ', 1, 'JFK', date '2013-01-02')"
        )
        cursor.execute(
            "insert into marts.fct_flights (flight_id, flight_date) values ('stale', date '2013-01-02')"
        )

    again = production.run(DAILY_MODELS, partition_key="2013-01-02")

    assert again.success and all(check_outcomes(again).values())
    assert {t: _raw_rows_per_day(warehouse, t) for t in ("flights", "weather")} == before
    facts = warehouse.query_arrow(
        "select cast(flight_date as varchar) as day, count(*) as n, count(distinct flight_id) as ids "
        "from marts.fct_flights group by 1 order by 1"
    ).to_pydict()
    assert facts == {"day": list(FLIGHTS), "n": list(FLIGHTS.values()), "ids": list(FLIGHTS.values())}
    metadata = materialization_metadata(again, "fct_flights")
    assert metadata["dagster/partition_row_count"] == FLIGHTS["2013-01-02"]


def _execute(database: str, *statements: str) -> None:
    with contextlib.closing(_pg_connect(database)) as connection, connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def test_a_failed_load_changes_nothing(production, built):
    """Tables and days load in one transaction: a COPY that fails leaves every table as it was."""
    warehouse = production.resource("warehouse")
    days = days_between(*(dt.date.fromisoformat(day) for day in DAYS))
    marker = "select count(*) as n from raw.flights where carrier = 'ZZ'"
    _execute(
        production.database,
        # A row only the failed load would delete, and a weather column COPY cannot fill.
        "insert into raw.flights (year, month, day, carrier, flight, origin, _lake_day) "
        "values (2013, 1, 2, 'ZZ', 1, 'JFK', date '2013-01-02')",
        "alter table raw.weather add constraint no_new_rows check (temp < -1000) not valid",
    )
    before = {t: _raw_rows_per_day(warehouse, t) for t in ("flights", "weather")}
    try:
        with pytest.raises(Exception, match="violates check constraint"):
            warehouse.load_raw(["flights", "weather"], days)  # flights load first, then weather fails
        assert {t: _raw_rows_per_day(warehouse, t) for t in ("flights", "weather")} == before
        assert warehouse.query_arrow(marker).column("n")[0].as_py() == 1  # flights' delete rolled back
    finally:
        _execute(production.database, "alter table raw.weather drop constraint no_new_rows")
        loaded = warehouse.load_raw(["flights", "weather"], days)
    assert loaded["flights"] == sum(FLIGHTS.values())
    assert _raw_rows_per_day(warehouse, "flights") == FLIGHTS
    assert warehouse.query_arrow(marker).column("n")[0].as_py() == 0
    with pytest.raises(FileNotFoundError, match=r"raw/flights/2013-01-04\.parquet"):
        warehouse.load_raw(["flights"], [dt.date(2013, 1, 4)])


@pytest.fixture(scope="module")
def features(production, built, local_home) -> dict[str, dg.ExecuteInProcessResult]:
    """features/flight_features of the window on both profiles (one embedded Spark session)."""
    from mlops_assets.defs.features.definitions import build_definitions
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.profiles import build_resources
    from mlops_assets.resources.storage import LocalObjectStore

    window = partition_range_tags(*DAYS)
    in_production = production.run([FEATURES], tags=window)
    local_settings = load_settings({"MLOPS_HOME": str(local_home)})
    local = build_definitions(local_settings)
    resources = {
        **build_resources(local_settings),
        "lake": LocalObjectStore(root=str(local_home / "lake")),
        "warehouse": DuckDBWarehouse(path=str(local_home / "warehouse.duckdb")),
    }
    on_duckdb = dg.materialize(list(local.assets), resources=resources, tags=window)
    assert in_production.success and on_duckdb.success
    return {"production": in_production, "local": on_duckdb}


def test_spark_features_from_postgres_equal_those_from_duckdb(production, local_home, features):
    from mlops_assets.features import flight_features as ff
    from mlops_assets.features.inputs import read_warehouse_inputs

    # The inputs handed to Spark are the same Arrow tables, schema included, from either warehouse.
    first, last = (dt.date.fromisoformat(day) for day in DAYS)
    from_postgres = read_warehouse_inputs(production.resource("warehouse"), first, last)
    from_duckdb = read_warehouse_inputs(local_home / "warehouse.duckdb", first, last)
    for pg_table, duck_table in zip(from_postgres, from_duckdb, strict=True):
        assert pg_table.schema == duck_table.schema and pg_table.num_rows > 0
        assert pg_table.sort_by(pg_table.schema.names[0]).equals(duck_table.sort_by(pg_table.schema.names[0]))

    # And the features Spark computed in production (read from PostgreSQL, written to S3) are those of
    # the local run, file for file.
    metadata = materialization_metadata(features["production"], *FEATURES.split("/"))
    assert metadata["warehouse"].startswith("postgresql://") and metadata["path"].startswith("s3://")
    for table in ff.ALL_TABLES:
        keys = sorted(production.bucket.keys(f"lake/features/{table}/"))
        assert [k.rsplit("/", 1)[-1] for k in keys] == [f"{day}.parquet" for day in FLIGHTS], table
        for key in keys:
            from_s3 = pq.read_table(io.BytesIO(production.bucket.get(key)))
            local = pq.read_table(local_home / "lake" / key.removeprefix("lake/"))
            assert from_s3.schema == local.schema and from_s3.num_rows > 0, key
            columns = from_s3.schema.names
            assert from_s3.sort_by([(c, "ascending") for c in columns]).equals(
                local.sort_by([(c, "ascending") for c in columns])
            ), key
    assert not production.bucket.keys("lake/features/.staging")  # staged locally, uploaded, cleaned
    assert not list((production.home / "scratch" / "features").glob("*/*"))


def test_training_set_with_its_offline_source_on_s3_equals_the_local_one(production, local_home, features):
    from mlops_assets.defs.features.feast_assets import build_feast_assets
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.feature_store import FeastResource, feast_resource
    from mlops_assets.resources.storage import LocalObjectStore

    project = f"wh_{uuid.uuid4().hex[:8]}"  # its own keys in the shared Redis and registry
    selection = ["features/feature_views", "features/training_set"]
    config = {
        "ops": {"features__training_set": {"config": {"start_date": TRAINING[0], "end_date": TRAINING[1]}}}
    }
    # The production Definitions' assets and resources, with the Feast project of this test.
    resources = {**production.defs.resources, "feast": feast_resource(load_settings(), project=project)}
    in_production = dg.materialize(
        list(production.defs.assets), selection=selection, resources=resources, run_config=config
    )
    local = dg.materialize(
        build_feast_assets(),
        selection=selection,
        resources={
            "feast": FeastResource(profile="local", home=str(local_home), project=project),
            "lake": LocalObjectStore(root=str(local_home / "lake")),
            "warehouse": DuckDBWarehouse(path=str(local_home / "warehouse.duckdb")),
        },
        run_config=config,
    )
    assert in_production.success and local.success

    key = materialization_metadata(local, "features", "training_set")["training_set/key"]
    from_s3 = pd.read_parquet(io.BytesIO(production.bucket.get(f"lake/{key}")))
    expected = pd.read_parquet(local_home / "lake" / key)
    assert len(expected) > 800 and expected.filter(like="__").notna().mean().mean() > 0.8
    pd.testing.assert_frame_equal(from_s3, expected)
    hashes = [
        materialization_metadata(r, "features", "training_set")["content_sha256"]
        for r in (in_production, local)
    ]
    assert hashes[0] == hashes[1]
    # The registry is on S3 too; the join wrote nothing into the lake.
    assert production.bucket.keys("feast/") == ["feast/registry.db"]
    assert not [k for k in production.bucket.keys("lake/features/") if "/." in k]


def test_s3_sources_are_narrowed_to_the_days_a_join_can_use(production, features):
    """The offline store lists an S3 feature folder and reads only the day files a window can reach,
    at the profile's endpoint (moto's server here), through s3fs."""
    from mlops_assets.features.offline_store import _list_files

    uri = f"s3://{production.bucket.name}/lake/features/weather_hourly"
    endpoint = os.environ["MLOPS_S3_ENDPOINT_URL"]
    filesystem, files = _list_files(uri, endpoint, dt.date(2013, 1, 2), dt.date(2013, 1, 9))
    assert [f.rsplit("/", 1)[-1] for f in files] == ["2013-01-02.parquet"]  # not 2013-01-01
    with filesystem.open(files[0], "rb") as read:
        assert read.read() == production.bucket.get("lake/features/weather_hourly/2013-01-02.parquet")
    assert _list_files(uri, endpoint, dt.date(2014, 1, 1), dt.date(2014, 1, 2))[1] == []
