"""`mlops cluster up|down|status`: the local Spark cluster (master, worker, Spark Connect server) and
the two-node Ray cluster, as long-lived processes of the home (`<home>/cluster`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from mlops_assets.cluster import celery_workers, ray_nodes, spark
from mlops_assets.cluster.daemons import (
    ClusterDir,
    Daemon,
    port_open,
    process_alive,
    running_pid,
    start,
    stop,
    wait_until,
)

ENGINES = ("spark", "ray", "celery")
START_TIMEOUT_S = 120.0


def cluster_dir() -> ClusterDir:
    from mlops_assets.lib.settings import load_settings

    return ClusterDir(load_settings().home / "cluster")


def engine_daemons(engine: str, folder: ClusterDir) -> list[Daemon]:
    if engine == "spark":
        return spark.daemons(spark.SparkClusterSpec(), folder)
    if engine == "celery":
        return celery_workers.daemons(celery_workers.spec_from_env(), folder)
    return ray_nodes.daemons(ray_nodes.RayClusterSpec(), folder)


def _start_all(daemons: list[Daemon], folder: ClusterDir, ready: dict[str, Callable[[], bool]]) -> None:
    """Each daemon in turn, waiting until it is ready before starting the next (the worker needs the
    master; the Connect server needs a worker to run its executors)."""
    for daemon in daemons:
        pid, started = start(daemon, folder)
        print(f"  {daemon.name}: {'started' if started else 'running'} (pid {pid})", flush=True)
        wait_until(
            ready.get(daemon.name, lambda d=daemon: d.port is not None and port_open(d.port)),
            lambda pid=pid: process_alive(pid),
            START_TIMEOUT_S,
            daemon.name,
            folder.log_file(daemon.name),
        )


def up_spark(folder: ClusterDir, spec: spark.SparkClusterSpec | None = None) -> None:
    spec = spec or spark.SparkClusterSpec()
    ready = {
        "spark-worker": lambda: spark.alive_workers(spec) > 0,
        "spark-connect": lambda: port_open(spec.connect_port) and spark.connect_application_running(spec),
    }
    _start_all(spark.daemons(spec, folder), folder, ready)
    answer = spark.check_query(spec)
    if answer != 45:
        raise RuntimeError(f"a query through {spec.connect_url} answered {answer}, not 45")
    print(
        f"spark: {spec.connect_url} (master {spec.master_url}); export MLOPS_SPARK_REMOTE={spec.connect_url}"
    )


def up_ray(folder: ClusterDir, spec: ray_nodes.RayClusterSpec | None = None) -> None:
    spec = spec or ray_nodes.RayClusterSpec()
    _start_all(ray_nodes.daemons(spec, folder), folder, {})
    nodes = ray_nodes.alive_nodes(spec, wait_for=2)
    if len(nodes) < 2:
        raise RuntimeError(f"the Ray cluster at {spec.address} has {len(nodes)} live node(s), not 2")
    print(f"ray: {spec.address}, {len(nodes)} nodes")
    print(f"  export MLOPS_RAY_ADDRESS={spec.address}")


def up_celery(folder: ClusterDir, spec: celery_workers.CeleryWorkersSpec | None = None) -> None:
    spec = spec or celery_workers.spec_from_env()
    daemons = celery_workers.daemons(spec, folder)
    # A log keeps earlier starts' lines: only a `ready.` written after this start counts.
    offsets = {d.name: _size(folder.log_file(d.name)) for d in daemons}
    ready = {
        d.name: (lambda name=d.name: celery_workers.worker_ready(folder, name, offsets[name]))
        for d in daemons
    }
    _start_all(daemons, folder, ready)
    print(f"celery: {len(daemons)} workers on queue {celery_workers.QUEUE} of {spec.broker}")
    print(f"  export {celery_workers.CELERY_BROKER_ENV}={spec.broker}")


def _size(path) -> int:
    return path.stat().st_size if path.exists() else 0


UP = {"spark": up_spark, "ray": up_ray, "celery": up_celery}


def cmd_cluster(args: argparse.Namespace) -> int:
    folder = cluster_dir()
    engines = [args.only] if args.only else list(ENGINES)
    if args.action == "up":
        for engine in engines:
            try:
                UP[engine](folder)
            except RuntimeError as error:
                print(f"{engine}: {error}")
                return 1
        return 0
    if args.action == "down":
        for engine in engines:
            for daemon in reversed(engine_daemons(engine, folder)):
                print(f"  {daemon.name}: {'stopped' if stop(daemon, folder) else 'not running'}")
        return 0
    return print_status(folder, engines)


def print_status(folder: ClusterDir, engines: list[str]) -> int:
    """One line per daemon; exit status 0 only when every daemon of the engines asked for runs."""
    all_up = True
    for engine in engines:
        for daemon in engine_daemons(engine, folder):
            pid = running_pid(daemon, folder)
            listening = daemon.port is None or port_open(daemon.port)
            state = "up" if pid and listening else "starting" if pid else "down"
            all_up &= state == "up"
            log = folder.log_file(daemon.name)
            port = daemon.port or "-"
            print(f"{daemon.name:14} {state:8} pid {pid or '-':<8} port {port:<6} log {log}")
    return 0 if all_up else 3


def add_cluster_command(commands) -> None:
    cluster = commands.add_parser(
        "cluster", help="the local Spark cluster + Spark Connect server and the 2-node Ray cluster"
    )
    cluster.add_argument("action", choices=["up", "down", "status"])
    cluster.add_argument("--only", choices=ENGINES, help="one engine (default: all three)")
    cluster.set_defaults(handler=cmd_cluster)
