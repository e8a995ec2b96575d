"""The production profile end to end, every part a real, separate service on 127.0.0.1, on a short window:

- the Dagster instance on PostgreSQL (deploy/production/dagster.yaml), the warehouse on PostgreSQL (dbt's
  production target), the landing zone and the lake on S3 (moto's server), an `mlflow server` (PostgreSQL
  backend, artifacts on S3), Feast's online store on Redis;
- `mlops cluster up`: a Spark standalone cluster behind Spark Connect, a two-node Ray cluster and two
  dagster-celery workers on the machine's RabbitMQ, with the production environment;
- the runs through `dagster asset materialize`, as a user types them, each step on a Celery worker:
  landed days to features, the last two days into Redis, a training run that tunes on the Ray cluster and
  registers a champion; then `mlops serve` answers from Redis with that champion.

The window is the training plan's 14 holdout and 14 validation days plus 17 to train on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from tests import s3_server
from tests.s3_server import S3Bucket
from tests.services import require_service
from tests.test_production_profile import INSTANCE_YAML, PG, _pg_connect, pg_database  # noqa: F401
from tests.test_training import RELAXED_FLOOR, TUNING
from tests.test_training_production import _free_port, mlflow_server  # noqa: F401 (fixture)
from tests.test_warehouse_production import fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cluster_ports")]

s3_endpoint = s3_server.s3_endpoint
s3_bucket = s3_server.s3_bucket

START, END = dt.date(2013, 1, 1), dt.date(2013, 2, 14)
ONLINE = (dt.date(2013, 2, 13), dt.date(2013, 2, 14))  # the two last landed days, into Redis
REDIS_DB = 7  # its own Redis database, emptied before and after
CLI = [sys.executable, "-m", "mlops_assets.cli"]


def flush_redis_db() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()


@pytest.fixture
def production_env(s3_bucket: S3Bucket, mlflow_server: str, tmp_path: Path) -> Iterator[dict[str, str]]:  # noqa: F811
    """The production profile's whole environment, as a deployment sets it (docs/production.md)."""
    from mlops_assets.cluster.celery_workers import CELERY_BROKER_ENV
    from mlops_assets.cluster.ray_nodes import RayClusterSpec
    from mlops_assets.cluster.spark import SparkClusterSpec

    for service in ("rabbitmq", "redis"):
        require_service(service)
    home = tmp_path / "home"
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML.read_text())
    flush_redis_db()
    with fresh_database("mlops_e2e_dagster") as instance_db, fresh_database("mlops_e2e_wh") as warehouse_db:
        pg = {"HOST": PG["host"], "PORT": str(PG["port"]), "USER": PG["user"], "PASSWORD": ""}
        # Not the test process's own settings, nor what libraries left in it: a local `ray.init()` of an
        # earlier test sets RAY_AUTH_MODE=token in os.environ, and a driver with it cannot start actors on
        # the cluster `mlops cluster` runs without authentication (every trial was cancelled).
        ours = ("MLOPS_", "DAGSTER_", "DBT_", "MLFLOW_", "FEAST_", "PROMETHEUS", "RAY_", "PYTHONBREAKPOINT")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        yield {
            **inherited,  # the s3_bucket fixture's fake AWS credentials among them
            "MLOPS_PROFILE": "production",
            "MLOPS_HOME": str(home),
            "DAGSTER_HOME": str(dagster_home),
            **{f"DAGSTER_PG_{k}": v for k, v in pg.items()},
            "DAGSTER_PG_DB": instance_db,
            **{f"DBT_PG_{k}": v for k, v in pg.items()},
            "DBT_PG_DBNAME": warehouse_db,
            "DBT_TARGET_PATH": str(home / "dbt-target"),
            "MLOPS_S3_BUCKET": s3_bucket.name,
            "MLOPS_S3_ENDPOINT_URL": s3_bucket.endpoint.url,
            "MLFLOW_TRACKING_URI": mlflow_server,
            "MLOPS_REDIS_URL": f"127.0.0.1:6379,db={REDIS_DB}",
            "MLOPS_SPARK_REMOTE": SparkClusterSpec().connect_url,
            # The wheel's Spark has no S3 connector: it writes here, the step uploads (docs/production.md).
            "MLOPS_SPARK_STAGING_DIR": str(home / "spark-staging"),
            "MLOPS_RAY_ADDRESS": RayClusterSpec().address,
            CELERY_BROKER_ENV: "pyamqp://guest:guest@127.0.0.1:5672//",
        }
    flush_redis_db()


@pytest.fixture
def cluster(production_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """`mlops cluster up`: Spark, Ray and Celery, started with the production environment (the workers
    inherit it, as a deployment's worker containers would have it)."""
    up = subprocess.run(
        [*CLI, "cluster", "up"], env=production_env, capture_output=True, text=True, timeout=600
    )
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield production_env
    finally:
        subprocess.run([*CLI, "cluster", "down"], env=production_env, capture_output=True, timeout=300)


def materialize(env: dict[str, str], selection: str, *options: str) -> str:
    from mlops_assets.demo import materialize_command

    done = subprocess.run(
        materialize_command(selection, *options), env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, f"{selection}:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    return done.stdout + done.stderr


def steps_on_workers(instance: dg.DagsterInstance) -> dict[str, set[str]]:
    """Per run (by its first step), the steps a Celery worker executed and the steps the run had."""
    found = {}
    for run in instance.get_runs():
        on_workers = {
            e.message.split("Executing steps ", 1)[1].split(" in celery worker")[0].strip('"')
            for e in instance.all_logs(run.run_id)
            if "in celery worker" in (e.message or "")
        }
        steps = {s.step_key for s in instance.get_run_step_stats(run.run_id)}
        assert steps and on_workers >= steps, (run.run_id, steps - on_workers)
        found[run.run_id] = steps
    return found


def served_flights(env: dict[str, str], day: dt.date) -> list[dict]:
    """Flights of `day` from the production warehouse's marts.fct_flights, as a client sends them."""
    import pandas as pd

    with contextlib.closing(_pg_connect(env["DBT_PG_DBNAME"])) as connection, connection.cursor() as cursor:
        cursor.execute(
            "select carrier, flight_number, origin, dest, sched_dep_local from marts.fct_flights "
            "where flight_date = %s order by flight_id limit 20",
            (day,),
        )
        rows = cursor.fetchall()
    return [
        {"carrier": c, "flight_number": int(n), "origin": o, "dest": d,
         "scheduled_departure": pd.Timestamp(t).isoformat()}
        for c, n, o, d, t in rows
    ]  # fmt: skip


@contextlib.contextmanager
def mlops_serve(env: dict[str, str], log: Path) -> Iterator[str]:
    port = _free_port()
    command = [*CLI, "serve", "--port", str(port), "--online-store", "redis"]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (
                "mlops serve never answered /health:\n" + log.read_text()[-3000:]
            )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_production_profile_end_to_end(cluster: dict[str, str], s3_bucket: S3Bucket, tmp_path: Path):
    from dagster_aws.s3 import S3Resource

    from mlops_assets.demo import DAILY_SELECTION, REFERENCE_SELECTION, TRAINING_SELECTION, training_set_ops
    from mlops_assets.replay import replay
    from mlops_assets.resources.storage_s3 import S3ObjectStore

    env = cluster
    # An upstream system lands the window's files in the S3 landing zone.
    landing = S3ObjectStore(
        s3=S3Resource(endpoint_url=s3_bucket.endpoint.url), bucket=s3_bucket.name, prefix="landing"
    )
    replay(landing, START, END)

    materialize(env, REFERENCE_SELECTION)
    materialize(env, DAILY_SELECTION, "--partition-range", f"{START}...{END}")
    # feast apply (registry on S3), then the last two days into Redis.
    materialize(env, "features/feature_views")
    materialize(env, "features/online_store", "--partition-range", f"{ONLINE[0]}...{ONLINE[1]}")
    training_ops = {
        **training_set_ops(START, END),
        "models__tuned_hyperparameters": {"config": TUNING},
        "models__flight_delay_model": {"config": {"ensemble_size": 2, "max_epochs": 8}},
        **RELAXED_FLOOR,
    }
    # The network, so that Ray Tune runs on the cluster (the default family, the trees, skips tuning).
    network = {"training": {"config": {"home": env["MLOPS_HOME"], "family": "pytorch_tabular"}}}
    selection = TRAINING_SELECTION.replace("features/feature_views,", "")
    run_config = {"ops": training_ops, "resources": network}
    materialize(env, selection, "--config-json", json.dumps(run_config))

    # Every step of every run executed on a Celery worker, and the runs are in PostgreSQL.
    with pytest.MonkeyPatch.context() as patch:
        for name in ("DAGSTER_HOME", *(k for k in env if k.startswith("DAGSTER_PG_"))):
            patch.setenv(name, env[name])
        with dg.DagsterInstance.get() as instance:
            assert "postgres" in type(instance.run_storage).__name__.lower()
            ran = steps_on_workers(instance)
            features = instance.get_latest_materialization_event(dg.AssetKey(["features", "flight_features"]))
            # The tuning's trials ran on both Ray nodes (each trial's last report names its node).
            nodes = {
                e.message.split(" on node ", 1)[1].split(",")[0]
                for run in instance.get_runs(limit=1)
                for e in instance.all_logs(run.run_id)
                if " epoch(s) on node " in (e.message or "")
            }
    assert len(ran) == 5
    assert {"features__flight_features", "models__registered_model"} <= set().union(*ran.values())
    assert features.asset_materialization.metadata["spark"].value == "Spark Connect sc://127.0.0.1:15002"

    # The lake is on S3 (the features uploaded from the cluster's staging folder), nothing on local disk.
    lake = set(s3_bucket.keys("lake/"))
    assert f"lake/features/flight_schedule/{END}.parquet" in lake
    assert "lake/models/registered_model.json" in lake
    assert not (Path(env["MLOPS_HOME"]) / "lake").exists()
    assert len(nodes) == 2, nodes

    # The registry is the MLflow server's: version 1 is the champion.
    import mlflow

    # Both URIs named: earlier tests in this process may have set mlflow's module-wide registry URI.
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("flight_delay", "champion")
    assert champion.version == "1"

    # `mlops serve` answers from Redis with that champion.
    with mlops_serve(env, tmp_path / "serve.log") as url:
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["feature_store"] == "redis" and health["champion_version"] == "1", health
        flights = served_flights(env, ONLINE[1])
        answer = httpx.post(f"{url}/predict/batch", json={"flights": flights}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == "1" and len(body["predictions"]) == len(flights) == 20
    assert all(0 < p["probability_late"] < 1 for p in body["predictions"])
