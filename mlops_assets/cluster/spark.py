"""A Spark standalone cluster on 127.0.0.1 with a Spark Connect server in front of it, from the pyspark
wheel itself (`bin/spark-class`, `bin/spark-submit` and the Spark Connect jar ship with it).

    master   org.apache.spark.deploy.master.Master    spark://127.0.0.1:7077 (web UI :8080, JSON at /json/)
    worker   org.apache.spark.deploy.worker.Worker    registers with the master, offers cores and memory
    connect  SparkConnectServer, an application of the cluster: sc://127.0.0.1:15002

Steps reach it with `MLOPS_SPARK_REMOTE=sc://127.0.0.1:15002`: no JVM starts in the step, and the
executors stay warm between runs. The server holds the settings the embedded session sets for itself
(UTC, INT64 Parquet timestamps) as its own static configuration.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mlops_assets.cluster.daemons import ClusterDir, Daemon

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


@dataclass(frozen=True)
class SparkClusterSpec:
    master_port: int = 7077
    master_ui_port: int = 8080
    worker_ui_port: int = 8081
    connect_port: int = 15002
    worker_cores: int = 2
    worker_memory: str = "3g"
    executor_memory: str = "2g"
    driver_memory: str = "1g"
    shuffle_partitions: int = 4

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def connect_url(self) -> str:
        return f"sc://127.0.0.1:{self.connect_port}"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _environment(folder: ClusterDir) -> dict[str, str]:
    return {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOG_DIR": str(folder.logs),
        "SPARK_LOCAL_DIRS": str(folder.work("spark-local")),
        "SPARK_LOCAL_IP": "127.0.0.1",
        # The JVMs' own default time zone, as the embedded session sets it (-Duser.timezone=UTC).
        "TZ": "UTC",
    }


def server_conf(spec: SparkClusterSpec) -> dict[str, str]:
    """The Connect server's static configuration: what SparkResource sets on an embedded session."""
    from mlops_assets.resources.spark import BASE_CONF

    return {
        **BASE_CONF,
        "spark.sql.shuffle.partitions": str(spec.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(spec.connect_port),
    }


def daemons(spec: SparkClusterSpec, folder: ClusterDir) -> list[Daemon]:
    """Master, worker and Connect server, in the order they start."""
    home = spark_home()
    env = _environment(folder)
    spark_class = str(home / "bin" / "spark-class")
    master = Daemon(
        name="spark-master",
        command=[
            spark_class,
            MASTER_CLASS,
            "--host",
            "127.0.0.1",
            "--port",
            str(spec.master_port),
            "--webui-port",
            str(spec.master_ui_port),
        ],
        port=spec.master_port,
        marker=MASTER_CLASS,
        env=env,
    )
    worker = Daemon(
        name="spark-worker",
        command=[
            spark_class,
            WORKER_CLASS,
            spec.master_url,
            "--host",
            "127.0.0.1",
            "--cores",
            str(spec.worker_cores),
            "--memory",
            spec.worker_memory,
            "--webui-port",
            str(spec.worker_ui_port),
            "--work-dir",
            str(folder.work("spark-work")),
        ],
        port=spec.worker_ui_port,
        marker=WORKER_CLASS,
        env=env,
    )
    conf = [item for key, value in server_conf(spec).items() for item in ("--conf", f"{key}={value}")]
    connect = Daemon(
        name="spark-connect",
        command=[
            str(home / "bin" / "spark-submit"),
            "--class",
            CONNECT_CLASS,
            "--name",
            "Spark Connect server",
            "--master",
            spec.master_url,
            "--driver-memory",
            spec.driver_memory,
            "--executor-memory",
            spec.executor_memory,
            "--total-executor-cores",
            str(spec.worker_cores),
            *conf,
        ],
        port=spec.connect_port,
        marker=CONNECT_CLASS,
        env=env,
    )
    return [master, worker, connect]


def master_state(spec: SparkClusterSpec) -> dict:
    """The master's own view (its web UI's JSON): workers, cores, running applications."""
    url = f"http://127.0.0.1:{spec.master_ui_port}/json/"
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


def alive_workers(spec: SparkClusterSpec) -> int:
    try:
        return sum(1 for w in master_state(spec).get("workers", []) if w.get("state") == "ALIVE")
    except OSError:
        return 0


def connect_application_running(spec: SparkClusterSpec) -> bool:
    """The Connect server is an application of the cluster with its executors granted."""
    try:
        apps = master_state(spec).get("activeapps", [])
    except OSError:
        return False
    return any(app.get("name") == "Spark Connect server" and app.get("cores", 0) > 0 for app in apps)


def check_query(spec: SparkClusterSpec) -> int:
    """Runs a query through the Connect server on the cluster's executors; returns its answer (45).

    In a child process: a Connect session switches pyspark's functions to Connect mode for the whole
    process (SPARK_CONNECT_MODE_ENABLED), which an embedded session in the caller would not survive."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mlops_assets.cluster.spark", spec.connect_url],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"a query through {spec.connect_url} failed:\n{done.stderr[-2000:]}")
    return int(done.stdout.strip().splitlines()[-1])


def _sum_through(url: str) -> int:
    from mlops_assets.resources.spark import SparkResource

    session = SparkResource(remote=url).get_session()
    try:
        return int(session.range(10).selectExpr("sum(id) AS s").collect()[0]["s"])
    finally:
        session.stop()


if __name__ == "__main__":
    import sys

    print(_sum_through(sys.argv[1]))
