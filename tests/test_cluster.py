"""`mlops cluster`: a real Spark standalone cluster behind a Spark Connect server and a real two-node
Ray cluster, started from the installed wheels on 127.0.0.1, used by the graph's own code, stopped by
their PID files.

1. the daemons' bookkeeping: a PID file names what was started; `down` stops that process group and
   leaves alone a process whose PID a stale file names;
2. `features/flight_features` through `MLOPS_SPARK_REMOTE` equals the embedded session's, value for value;
3. Ray Tune through `MLOPS_RAY_ADDRESS` places trials on both nodes and gives the local run's results.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops_assets.cluster.daemons import (
    ClusterDir,
    Daemon,
    port_open,
    process_alive,
    running_pid,
    start,
    stop,
)
from tests.conftest import TRAINING_PLAN

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cluster_ports")]

REAL_DAYS = ("2013-01-01", "2013-01-03")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- the daemons' bookkeeping ---------------------------------------------------------------------


def http_daemon(port: int) -> Daemon:
    # A server that forks a child, as spark-class and `ray start` do: stopping must end both.
    script = (
        "import subprocess, sys, http.server; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    return Daemon(name="probe", command=[sys.executable, "-c", script], port=port, marker="serve_forever")


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_daemon_is_started_once_and_stopped_with_its_children(tmp_path):
    folder = ClusterDir(tmp_path / "cluster")
    daemon = http_daemon(free_port())
    pid, started = start(daemon, folder)
    try:
        deadline = time.monotonic() + 20
        while not (port_open(daemon.port) and children_of(pid)):
            assert time.monotonic() < deadline, "the probe daemon never listened"
            time.sleep(0.1)
        assert started and running_pid(daemon, folder) == pid
        assert start(daemon, folder) == (pid, False)  # a second `up` finds it running
        child = children_of(pid)[0]
        assert (folder.logs / "probe.log").exists()
    finally:
        assert stop(daemon, folder)
    assert not process_alive(pid) and not process_alive(child)
    assert not folder.pid_file("probe").exists() and not port_open(daemon.port)
    assert not stop(daemon, folder)  # stopping again is a no-op


def test_a_daemon_deaf_to_sigterm_is_killed_after_its_grace(tmp_path):
    """A process group that outlives SIGTERM (as `ray start --block` does for about 30 s a node) is
    SIGKILLed once the daemon's grace has passed, not after the default 30 s."""
    import dataclasses

    folder = ClusterDir(tmp_path / "cluster")
    port = free_port()
    script = (
        "import signal, http.server; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    daemon = dataclasses.replace(http_daemon(port), command=[sys.executable, "-c", script], stop_grace_s=1.0)
    pid, _ = start(daemon, folder)
    deadline = time.monotonic() + 20
    while not port_open(port):
        assert time.monotonic() < deadline, "the probe daemon never listened"
        time.sleep(0.1)
    began = time.monotonic()
    assert stop(daemon, folder)
    assert not process_alive(pid) and not port_open(port)
    assert 1.0 <= time.monotonic() - began < 20, "killed after the grace, not before it nor after 30 s"


def test_the_ray_nodes_are_stopped_with_a_short_grace(tmp_path):
    from mlops_assets.cluster import ray_nodes

    nodes = ray_nodes.daemons(ray_nodes.RayClusterSpec(), ClusterDir(tmp_path / "cluster"))
    assert [d.stop_grace_s for d in nodes] == [ray_nodes.RAY_STOP_GRACE_S] * 2
    assert ray_nodes.RAY_STOP_GRACE_S <= 5


def test_a_stale_pid_file_never_stops_another_program(tmp_path):
    """The PID in a stale file may belong to another program by now: it does not hold the daemon's
    command line, so `down` forgets the file and leaves the process alone."""
    folder = ClusterDir(tmp_path / "cluster")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        folder.run.mkdir(parents=True)
        folder.pid_file("probe").write_text(f"{other.pid}\n")
        daemon = http_daemon(free_port())
        time.sleep(0.3)  # the other program's command line is in place
        assert running_pid(daemon, folder) is None
        assert not stop(daemon, folder)
        assert other.poll() is None and not folder.pid_file("probe").exists()
    finally:
        other.kill()
        other.wait()


def test_a_taken_port_is_reported_not_fought_over(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        daemon = http_daemon(sock.getsockname()[1])
        with pytest.raises(RuntimeError, match="taken by a process this home did not start"):
            start(daemon, ClusterDir(tmp_path / "cluster"))


def test_the_celery_workers_serve_the_broker_the_runs_use(tmp_path, monkeypatch):
    """`mlops cluster up --only celery` starts its workers on MLOPS_CELERY_BROKER when it is set (the runs
    submit there), else on the machine's RabbitMQ."""
    from mlops_assets.cluster import celery_workers
    from mlops_assets.cluster.commands import engine_daemons

    folder = ClusterDir(tmp_path / "cluster")
    monkeypatch.delenv(celery_workers.CELERY_BROKER_ENV, raising=False)
    assert all(celery_workers.DEFAULT_BROKER in d.command for d in engine_daemons("celery", folder))
    other = "pyamqp://guest:guest@127.0.0.1:5672/bench"
    monkeypatch.setenv(celery_workers.CELERY_BROKER_ENV, other)
    daemons = engine_daemons("celery", folder)
    assert len(daemons) == 2 and all(other in d.command for d in daemons)


# ---- Spark: a standalone cluster behind Spark Connect ----------------------------------------------


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    from mlops_assets.cluster import spark
    from mlops_assets.cluster.commands import up_spark

    folder = ClusterDir(tmp_path_factory.mktemp("spark_cluster") / "cluster")
    spec = spark.SparkClusterSpec()
    try:
        up_spark(folder, spec)
        yield spec, folder
    finally:
        for daemon in reversed(spark.daemons(spec, folder)):
            stop(daemon, folder)


def materialize_features_in_process(home: Path) -> None:
    from mlops_assets.defs.features.assets import build_feature_assets
    from mlops_assets.lib.calendar import partition_range_tags
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.spark import SparkResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.warehouse import DuckDBWarehouse

    result = dg.materialize(
        build_feature_assets(load_settings({"MLOPS_HOME": str(home)})),
        resources={
            "spark": SparkResource(master="local[2]"),
            "lake": LocalObjectStore(root=str(home / "lake")),
            "warehouse": DuckDBWarehouse(path=str(home / "warehouse.duckdb")),
        },
        tags=partition_range_tags(*REAL_DAYS),
    )
    assert result.success


def materialize_features_through_the_cli(home: Path, connect_url: str) -> subprocess.CompletedProcess:
    """As a user would: `dagster asset materialize` with MLOPS_SPARK_REMOTE set. (A process holds either
    an embedded session or a Connect one, and this test process may hold an embedded one already.)"""
    import os

    from mlops_assets.demo import materialize_command

    (home / "dagster_home").mkdir()
    env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
           "MLOPS_SPARK_REMOTE": connect_url, "MLOPS_PROFILE": "local"}  # fmt: skip
    command = materialize_command("features/flight_features", "--partition-range", "...".join(REAL_DAYS))
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_features_through_spark_connect_equal_the_embedded_sessions(spark_cluster, tmp_path):
    from mlops_assets.features.flight_features import ALL_TABLES
    from tests.conftest import build_real_warehouse

    spec, _ = spark_cluster
    homes = (tmp_path / "remote", tmp_path / "embedded")
    for home in homes:
        build_real_warehouse(home, REAL_DAYS)
    done = materialize_features_through_the_cli(homes[0], spec.connect_url)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The step's metadata names the engine it ran on.
    with dg.DagsterInstance.from_config(str(homes[0] / "dagster_home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["features", "flight_features"]))
    assert event is not None and event.asset_materialization is not None
    assert event.asset_materialization.metadata["spark"].value == f"Spark Connect {spec.connect_url}"
    materialize_features_in_process(homes[1])
    days = [str(dt.date(2013, 1, d)) for d in (1, 2, 3)]
    for table in ALL_TABLES:
        for day in days:
            files = [home / "lake" / "features" / table / f"{day}.parquet" for home in homes]
            remote_frame, embedded_frame = (pq.read_table(f).to_pandas() for f in files)
            # Every column: rows that tie on the entity columns (a carrier's hourly snapshots) come out of
            # Spark in partition order, which differs between runs.
            key = list(remote_frame.columns)
            assert len(remote_frame) > 0, (table, day)
            pd.testing.assert_frame_equal(
                remote_frame.sort_values(key, ignore_index=True),
                embedded_frame.sort_values(key, ignore_index=True),
                check_exact=True,
                obj=f"{table} {day}",
            )


def test_the_cluster_status_command_reports_it_up(spark_cluster, capsys):
    from mlops_assets.cluster import spark
    from mlops_assets.cluster.commands import print_status

    spec, folder = spark_cluster
    assert print_status(folder, ["spark"]) == 0
    states = [line.split()[:2] for line in capsys.readouterr().out.splitlines()]
    assert states == [[daemon.name, "up"] for daemon in spark.daemons(spec, folder)]
    assert spark.alive_workers(spec) == 1 and spark.connect_application_running(spec)
    assert print_status(folder, ["ray"]) == 3  # not started in this home


# ---- Ray: two nodes ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    from mlops_assets.cluster import ray_nodes
    from mlops_assets.cluster.commands import up_ray

    folder = ClusterDir(tmp_path_factory.mktemp("ray_cluster") / "cluster")
    spec = ray_nodes.RayClusterSpec()
    try:
        up_ray(folder, spec)
        yield spec
    finally:
        for daemon in reversed(ray_nodes.daemons(spec, folder)):
            stop(daemon, folder)


def tune(home: Path, compute, log_lines: list[str]):
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.training.data import load_training_data, newest_training_set, prepared_arrays
    from mlops_assets.training.tuning import run_tuning

    class Log:
        def info(self, message: str) -> None:
            log_lines.append(message)

        debug = info

    lake = LocalObjectStore(root=str(home / "lake"))
    plan = TRAINING_PLAN
    data = load_training_data(lake, plan["holdout_days"], plan["valid_days"], newest_training_set(lake))
    prep, arrays = prepared_arrays(data)
    # grace_period = max_epochs: ASHA has no rung below max_t, so no trial is stopped early and the
    # outcome does not depend on the order in which the two nodes report (the one nondeterminism).
    return run_tuning(
        data={"preprocessor": prep.to_dict(), **arrays},
        compute=compute,
        num_samples=4,
        max_epochs=2,
        grace_period=2,
        seed=7,
        storage_path=str(home / "ray_results"),
        name=f"tune-{len(log_lines)}-{time.time_ns()}",
        log=Log(),
    )


def tune_in_a_fresh_process(home: Path, address: str):
    """The cluster's driver in a new interpreter. A process that has run a local Ray before (an earlier
    module on this pytest worker) keeps Ray's token authentication, and a driver with it has every trial
    cancelled on this cluster, which runs without authentication (a `dagster` step process is new too)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_tune_on_cluster, str(home), address).result(timeout=600)


def _tune_on_cluster(home: str, address: str):
    import os

    from mlops_assets.resources.compute import ComputeResource

    for name in [n for n in os.environ if n.startswith("RAY_AUTH")]:
        del os.environ[name]
    lines: list[str] = []
    return tune(Path(home), ComputeResource(ray_address=address), lines), lines


def test_tuning_on_the_ray_cluster_uses_both_nodes_and_equals_the_local_run(ray_cluster, training_set_home):
    from mlops_assets.resources.compute import ComputeResource

    clustered, on_cluster = tune_in_a_fresh_process(training_set_home, ray_cluster.address)
    local = tune(training_set_home, ComputeResource(num_cpus=2), [])
    nodes = {t["node"] for t in clustered.trials}
    assert len(nodes) == 2, f"all trials ran on {nodes}"
    assert clustered.parallelism == 2
    assert sum("finished after 2 epoch(s) on node" in line for line in on_cluster) == 4

    def by_config(outcome):
        return {tuple(sorted(t["config"].items())): t["best_val_auc"] for t in outcome.trials}

    assert by_config(clustered) == by_config(local)  # trial for trial, to the last bit (CPU, 1 thread)
    assert clustered.best == local.best


# ---- Dagster steps on Celery workers (RabbitMQ as broker) ---------------------------------------------

CELERY_DAYS = ("2013-01-01", "2013-01-02")
DAILY = "raw/flights,raw/weather,stg_flights,stg_weather,fct_flights,features/flight_features"


def daily_home(home: Path) -> dict[str, str]:
    """The two days landed, the reference tables ingested and modelled: what the daily run needs."""
    from mlops_assets.replay import replay
    from mlops_assets.resources.storage import LocalObjectStore
    from tests.conftest import materialize_raw
    from tests.test_dbt import REFERENCE_MODELS, run_dbt, transform_definitions

    landing, lake = LocalObjectStore(root=str(home / "landing")), LocalObjectStore(root=str(home / "lake"))
    replay(landing, *(dt.date.fromisoformat(d) for d in CELERY_DAYS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.setenv("DBT_TARGET_PATH", str(home / "dbt-target"))
        materialize_raw(landing, lake, ["raw/airlines", "raw/airports", "raw/planes"])
        assert run_dbt(transform_definitions(), REFERENCE_MODELS).success
    (home / "dagster_home").mkdir()
    return {"MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"), "MLOPS_PROFILE": "local"}


def run_daily(env: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    from mlops_assets.demo import materialize_command

    command = materialize_command(DAILY, "--partition-range", "...".join(CELERY_DAYS))
    return subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def celery_home(tmp_path_factory):
    """A home whose daily run executed on two Celery workers started by `mlops cluster up`."""
    import os

    from tests.services import require_service

    require_service("rabbitmq")
    home = tmp_path_factory.mktemp("celery_home")
    env = {**daily_home(home), "MLOPS_CELERY_BROKER": "pyamqp://guest:guest@127.0.0.1:5672//"}
    cluster = [sys.executable, "-m", "mlops_assets.cli", "cluster"]
    up = subprocess.run([*cluster, "up", "--only", "celery"], env={**os.environ, **env}, capture_output=True,
                        text=True, timeout=300)  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        done = run_daily(env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        yield home, done
    finally:
        subprocess.run([*cluster, "down", "--only", "celery"], env={**os.environ, **env}, timeout=120)


def test_the_daily_runs_steps_execute_on_the_celery_workers(celery_home):
    home, done = celery_home
    steps = {"raw__flights", "raw__weather", "dbt_daily_models", "features__flight_features"}
    for step in steps:
        assert f'Submitting celery task for step "{step}" to queue "dagster"' in done.stdout + done.stderr
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        run = instance.get_runs(limit=1)[0]
        on_workers = [
            e.message for e in instance.all_logs(run.run_id) if "in celery worker" in (e.message or "")
        ]
        stats = {s.step_key: s.status.value for s in instance.get_run_step_stats(run.run_id)}
    assert {m.split("Executing steps ", 1)[1].split(" in celery worker")[0] for m in on_workers} >= steps
    assert stats and set(stats.values()) == {"SUCCESS"}
    logs = [ClusterDir(home / "cluster").log_file(f"celery-worker-{i}").read_text() for i in (1, 2)]
    assert all("succeeded" in log for log in logs), "both workers executed steps"


def test_the_celery_runs_outputs_equal_the_in_process_runs(celery_home, tmp_path):
    from mlops_assets.features.flight_features import ALL_TABLES

    home, _ = celery_home
    local = tmp_path / "local"
    done = run_daily(daily_home(local))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tables = [f"raw/{t}" for t in ("flights", "weather")] + [f"features/{t}" for t in ALL_TABLES]
    for table in tables:
        for day in CELERY_DAYS:
            a, b = (pq.read_table(h / "lake" / table / f"{day}.parquet").to_pandas() for h in (home, local))
            assert len(a) > 0, (table, day)
            key = list(a.columns)  # every column: ties on a few come out of Spark in partition order
            pd.testing.assert_frame_equal(
                a.sort_values(key, ignore_index=True), b.sort_values(key, ignore_index=True), check_exact=True
            )
