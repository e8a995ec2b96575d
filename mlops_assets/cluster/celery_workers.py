"""Dagster steps on Celery workers, with the machine's RabbitMQ as broker (dagster-celery).

With `MLOPS_CELERY_BROKER` set, the Definitions' executor is dagster-celery's: a run's process submits
each step as a task to the broker's `dagster` queue and a worker executes it (it loads the code location
itself, from the run's origin, and reaches the run's Dagster instance through the reference the task
carries). `mlops cluster up --only celery` starts two such workers on this machine, one step at a time
each; on real machines they are the same command with the broker's URL.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from mlops_assets.cluster.daemons import ClusterDir, Daemon

CELERY_BROKER_ENV = "MLOPS_CELERY_BROKER"
DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
QUEUE = "dagster"  # dagster-celery's default queue


@dataclass(frozen=True)
class CeleryWorkersSpec:
    broker: str = DEFAULT_BROKER
    workers: int = 2
    concurrency: int = 1


def _celery() -> str:
    found = shutil.which("celery", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError(
            "the `celery` command is not installed beside this Python (pip install dagster-celery)"
        )
    return found


def worker_name(index: int) -> str:
    return f"celery-worker-{index}"


def daemons(spec: CeleryWorkersSpec, folder: ClusterDir) -> list[Daemon]:
    celery = _celery()
    return [
        Daemon(
            name=worker_name(index),
            command=[
                celery,
                "-A",
                "mlops_assets.cluster.celery_app",
                "-b",
                spec.broker,
                "worker",
                "--prefetch-multiplier=1",
                "-Q",
                QUEUE,
                "--concurrency",
                str(spec.concurrency),
                "-n",
                f"mlops-{index}@%h",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            port=None,
            marker=f"mlops-{index}@",
            # The worker builds the Definitions itself: it needs the caller's profile and home, which it
            # inherits; a worker on another machine is given the same variables.
            env={"PYTHONUNBUFFERED": "1"},
        )
        for index in range(1, spec.workers + 1)
    ]


def worker_ready(folder: ClusterDir, name: str, offset: int = 0) -> bool:
    """Celery logs `<node name> ready.` once it consumes from the queue (after `offset` of its log)."""
    try:
        with open(folder.log_file(name), "rb") as log:
            log.seek(offset)
            return b" ready." in log.read()
    except OSError:
        return False


def broker_from_env() -> str | None:
    return os.environ.get(CELERY_BROKER_ENV) or None


def spec_from_env() -> CeleryWorkersSpec:
    """The workers of the broker the runs will use (MLOPS_CELERY_BROKER), else the machine's RabbitMQ."""
    return CeleryWorkersSpec(broker=broker_from_env() or DEFAULT_BROKER)
