"""The `production` profile end to end: S3 over HTTP (moto's server) and a PostgreSQL Dagster instance.

- S3: the replay lands files in the bucket, the production Definitions' own job ingests them into the
  lake on the same bucket, and the landing-zone sensor turns S3 objects (keyed by ETag) into run
  requests.
- PostgreSQL: `deploy/production/dagster.yaml` loads against a fresh database on the machine's server,
  and a materialization really lands in its `runs` and `event_logs` tables.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.replay import replay
from tests import s3_server
from tests.conftest import materialize_raw
from tests.s3_server import S3Bucket
from tests.services import require_service

# The S3 server's fixtures, used by this module.
s3_endpoint = s3_server.s3_endpoint
s3_bucket = s3_server.s3_bucket

DAY_1, DAY_2 = dt.date(2013, 1, 1), dt.date(2013, 1, 2)
REFERENCE = ["airlines", "airports", "planes"]
REFERENCE_ROWS = {"airlines": 16, "airports": 1458, "planes": 3322}
FLIGHTS_ON_DAY_1 = 842
REPO_ROOT = Path(__file__).resolve().parents[1]
INSTANCE_YAML = REPO_ROOT / "deploy" / "production" / "dagster.yaml"


def _key(*parts: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", *parts])


def _landed_rows(bucket: S3Bucket, key: str) -> int:
    return len(pd.read_csv(io.BytesIO(bucket.get(key))))


def _lake_frame(bucket: S3Bucket, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(bucket.get(key)))


# --------------------------------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def production(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Bucket:
    """The environment of a production deployment, pointed at a fresh bucket on the moto server."""
    monkeypatch.setenv("MLOPS_PROFILE", "production")
    monkeypatch.setenv("MLOPS_S3_BUCKET", s3_bucket.name)
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", s3_bucket.endpoint.url)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))  # must stay unused: data goes to S3
    return s3_bucket


def _production_stores():
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.profiles import build_resources
    from mlops_assets.resources.storage import resolve_store
    from mlops_assets.resources.storage_s3 import S3ObjectStore

    settings = load_settings()
    assert settings.profile == "production"
    resources = build_resources(settings)
    landing, lake = resolve_store(resources["landing_zone"]), resolve_store(resources["lake"])
    assert isinstance(landing, S3ObjectStore) and isinstance(lake, S3ObjectStore)
    return landing, lake


def _production_definitions() -> dg.Definitions:
    """Built afresh (not the cached object) so it sees this test's environment."""
    from mlops_assets.definitions import build_definitions

    return build_definitions.__wrapped__()


def test_replay_lands_csv_objects_in_the_s3_landing_zone(
    production: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from dagster_aws.s3 import S3Resource

    clients = []
    get_client = S3Resource.get_client
    monkeypatch.setattr(S3Resource, "get_client", lambda self: clients.append(1) or get_client(self))
    landing, _ = _production_stores()
    summary = replay(landing, DAY_1, DAY_2)

    # One boto3 client for the whole replay, not a new session per request (~0.1-0.5 s each).
    assert len(clients) == 1

    assert (summary.files, summary.days) == (3 + 2 * 2, 2)
    assert production.keys() == [
        "landing/flights/2013-01-01.csv",
        "landing/flights/2013-01-02.csv",
        "landing/reference/airlines.csv",
        "landing/reference/airports.csv",
        "landing/reference/planes.csv",
        "landing/weather/2013-01-01.csv",
        "landing/weather/2013-01-02.csv",
    ]
    assert _landed_rows(production, "landing/flights/2013-01-01.csv") == FLIGHTS_ON_DAY_1
    assert _landed_rows(production, "landing/reference/airlines.csv") == REFERENCE_ROWS["airlines"]
    # The store reads back what boto3 sees over HTTP, and reports the object's ETag as its version.
    assert landing.read_bytes("flights/2013-01-01.csv") == production.get("landing/flights/2013-01-01.csv")
    head = landing.head("flights/2013-01-01.csv")
    assert head.version == production.etag("landing/flights/2013-01-01.csv")
    assert head.size == len(production.get("landing/flights/2013-01-01.csv"))
    assert landing.exists("weather/2013-01-02.csv") and not landing.exists("weather/2013-01-03.csv")
    assert landing.uri("reference/planes.csv") == f"s3://{production.name}/landing/reference/planes.csv"
    assert summary.rows == sum(_landed_rows(production, key) for key in production.keys("landing/"))
    assert not (tmp_path / "home").exists()


def test_production_definitions_ingest_from_s3_into_the_s3_lake(production: S3Bucket, tmp_path: Path):
    landing, _ = _production_stores()
    replay(landing, DAY_1, DAY_1)
    job = _production_definitions().resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()

    references = job.execute_in_process(instance=instance, asset_selection=[_key(t) for t in REFERENCE])
    daily = job.execute_in_process(
        instance=instance, asset_selection=[_key("flights"), _key("weather")], partition_key="2013-01-01"
    )

    assert references.success and daily.success
    assert production.keys("lake/") == sorted(
        [f"lake/raw/{t}.parquet" for t in REFERENCE]
        + [f"lake/quarantine/{t}/rows/reference.parquet" for t in REFERENCE]
        + [f"lake/raw/{t}/2013-01-01.parquet" for t in ("flights", "weather")]
        + [f"lake/quarantine/{t}/rows/2013-01-01.parquet" for t in ("flights", "weather")]
    )
    for table, rows in REFERENCE_ROWS.items():
        assert len(_lake_frame(production, f"lake/raw/{table}.parquet")) == rows
        assert _landed_rows(production, f"landing/reference/{table}.csv") == rows
    flights = _lake_frame(production, "lake/raw/flights/2013-01-01.parquet")
    weather = _lake_frame(production, "lake/raw/weather/2013-01-01.parquet")
    assert len(flights) == _landed_rows(production, "landing/flights/2013-01-01.csv") == FLIGHTS_ON_DAY_1
    assert len(weather) == _landed_rows(production, "landing/weather/2013-01-01.csv") > 0
    assert len(_lake_frame(production, "lake/quarantine/flights/rows/2013-01-01.parquet")) == 0
    assert str(flights["time_hour"].dtype) == "datetime64[ns, UTC]"
    assert set(flights["carrier"]) <= set(_lake_frame(production, "lake/raw/airlines.parquet")["carrier"])

    (materialization,) = [
        m for m in daily.asset_materializations_for_node("raw__flights") if m.asset_key == _key("flights")
    ]
    assert materialization.partition == "2013-01-01"
    assert materialization.metadata["stored_at"].value == (
        f"s3://{production.name}/lake/raw/flights/2013-01-01.parquet"
    )
    assert materialization.metadata["dagster/row_count"].value == FLIGHTS_ON_DAY_1
    checks = {(e.asset_key, e.check_name): e.passed for e in daily.get_asset_check_evaluations()}
    assert checks == {
        (key, check): True
        for key in (_key("flights"), _key("weather"))
        for check in ("great_expectations_suite", "quarantine_rate")
    }
    assert not (tmp_path / "home").exists()


def test_landing_zone_sensor_keys_runs_by_s3_object_version(production: S3Bucket):
    landing, _ = _production_stores()
    replay(landing, DAY_1, DAY_2)
    defs = _production_definitions()
    sensor = defs.resolve_sensor_def("landing_zone_sensor")
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None):
        # The production store, as defined (EnvVars unresolved): the context resolves it like the daemon.
        with dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            repository_def=defs.get_repository_def(),
            resources={"landing_zone": defs.resources["landing_zone"]},
        ) as context:
            return sensor.evaluate_tick(context)

    first = tick(None)
    reference = [f"reference/{t}.csv" for t in ("airlines", "airports", "planes")]
    days = [(f"flights/2013-01-0{d}.csv", f"weather/2013-01-0{d}.csv") for d in (1, 2)]
    etag = {key: production.etag(f"landing/{key}") for key in [*reference, *(k for day in days for k in day)]}
    assert [r.run_key for r in first.run_requests] == [f"{key}@{etag[key]}" for key in reference] + [
        f"{flights}@{etag[flights]}+{weather}@{etag[weather]}" for flights, weather in days
    ]  # reference tables first; a day's two tables in one run, each file keyed by its ETag
    assert [r.partition_key for r in first.run_requests] == [None] * 3 + ["2013-01-01", "2013-01-02"]
    assert [r.asset_selection for r in first.run_requests] == [
        [_key(t)] for t in ("airlines", "airports", "planes")
    ] + [[_key("flights"), _key("weather")]] * 2
    tags = first.run_requests[3].tags
    assert {
        name: tags[name] for name in ("mlops/landed_file", "mlops/landed_version", "dagster/partition")
    } == {
        "mlops/landed_file": "flights/2013-01-01.csv,weather/2013-01-01.csv",
        "mlops/landed_version": f"{etag['flights/2013-01-01.csv']},{etag['weather/2013-01-01.csv']}",
        "dagster/partition": "2013-01-01",
    }

    unchanged = tick(first.cursor)
    assert (
        unchanged.run_requests == [] and unchanged.skip_message == "no new files among 7 in the landing zone"
    )

    # Upstream re-delivers one day with different bytes (a new ETag) and is still uploading another.
    key = "landing/flights/2013-01-02.csv"
    old_etag = production.etag(key)
    corrected = production.get(key).rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"  # one row fewer
    new_etag = production.put(key, corrected)
    production.put("landing/flights/.2013-01-03.csv.tmp-upload", b"year,month\n")
    assert new_etag != old_etag

    redelivered = tick(first.cursor)
    assert [(r.run_key, r.partition_key) for r in redelivered.run_requests] == [
        (f"flights/2013-01-02.csv@{new_etag}", "2013-01-02")
    ]
    assert tick(redelivered.cursor).run_requests == []


# --------------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------------

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def _pg_connect(dbname: str):
    import psycopg2

    require_service("postgresql")
    connection = psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)
    connection.autocommit = True
    return connection


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty database on the machine's PostgreSQL server, dropped afterwards."""
    name = f"mlops_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_connect("postgres")
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def production_instance(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """The production instance config, as deployed: DAGSTER_HOME/dagster.yaml plus DAGSTER_PG_* env."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", PG["host"])
    monkeypatch.setenv("DAGSTER_PG_PORT", str(PG["port"]))
    monkeypatch.setenv("DAGSTER_PG_USER", PG["user"])
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")  # trust auth on this machine
    monkeypatch.setenv("DAGSTER_PG_DB", pg_database)
    instance = dg.DagsterInstance.get()
    try:
        yield instance
    finally:
        instance.dispose()


def test_production_instance_config_is_postgres_with_a_queue_and_a_gpu_pool_of_one(
    production_instance: dg.DagsterInstance, pg_database: str
):
    from dagster._core.instance.config import PoolGranularity
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    instance = production_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert f"@127.0.0.1:5432/{pg_database}" in instance.run_storage.postgres_url
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
    pools = instance.get_concurrency_config().pool_config
    assert (pools.default_pool_limit, pools.pool_granularity) == (1, PoolGranularity.OP)
    assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 10

    # The first step that asks for the `gpu` pool gets it at the default limit: one slot, in Postgres.
    instance.event_log_storage.initialize_concurrency_limit_to_default("gpu")
    assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1
    with contextlib.closing(_pg_connect(pg_database)) as connection, connection.cursor() as cursor:
        cursor.execute('SELECT "limit" FROM concurrency_limits WHERE concurrency_key = %s', ("gpu",))
        assert cursor.fetchall() == [(1,)]


def test_production_instance_needs_its_postgres_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name in (
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    ):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(Exception, match='environment variable "DAGSTER_PG_HOST" which is not set'):
        dg.DagsterInstance.get()


def test_materialization_is_recorded_in_postgres(
    production_instance: dg.DagsterInstance, pg_database, stores
):
    landing, lake = stores
    replay(landing, DAY_1, DAY_1, tables=())  # the reference tables only
    instance = production_instance

    result = materialize_raw(landing, lake, [f"raw/{t}" for t in REFERENCE], instance=instance)

    assert result.success
    runs = instance.get_runs()
    assert [run.run_id for run in runs] == [result.run_id]
    assert runs[0].status == dg.DagsterRunStatus.SUCCESS
    event = instance.get_latest_materialization_event(_key("airlines"))
    assert event is not None and event.run_id == result.run_id
    assert event.asset_materialization.metadata["dagster/row_count"].value == REFERENCE_ROWS["airlines"]
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(_key("planes"), "great_expectations_suite")]
    )
    assert check[dg.AssetCheckKey(_key("planes"), "great_expectations_suite")].run_id == result.run_id

    # Straight from PostgreSQL: this is the database the instance wrote, not a SQLite file.
    with contextlib.closing(_pg_connect(pg_database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute(
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s "
            "AND dagster_event_type IN ('ASSET_MATERIALIZATION', 'ASSET_CHECK_EVALUATION', %s) "
            "GROUP BY dagster_event_type ORDER BY dagster_event_type",
            (result.run_id, dg.DagsterEventType.RUN_SUCCESS.value),  # stored as 'PIPELINE_SUCCESS'
        )
        assert cursor.fetchall() == [
            ("ASSET_CHECK_EVALUATION", 6),
            ("ASSET_MATERIALIZATION", 3),
            ("PIPELINE_SUCCESS", 1),
        ]
        cursor.execute(
            "SELECT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = "
            "'ASSET_MATERIALIZATION' ORDER BY asset_key",
            (result.run_id,),
        )
        assert [row[0] for row in cursor.fetchall()] == [_key(t).to_string() for t in REFERENCE]
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchone() == (1,)
    assert not list((Path(instance.root_directory)).glob("**/*.db"))
