"""A run launcher whose runs are noticed when their process dies.

Dagster's run monitoring (the `MONITORING` daemon of `dagster-daemon run`, on when dagster.yaml says
`run_monitoring: {enabled: true}`) asks the instance's run launcher, every `poll_interval_seconds`,
whether the worker of each STARTED run is alive, and marks the run FAILURE when it is not. The
DefaultRunLauncher cannot answer, so a run whose process was killed (`kill -9`, the OOM killer, a
closed laptop lid on `dagster asset materialize`) stayed STARTED forever and counted against
`max_concurrent_runs`: four such runs and the queue stopped.

This launcher launches exactly as the DefaultRunLauncher does and answers the health check from the
run's own event log: the RUN_START event records the pid of the process that executes the run (the
CLI's process for `dagster asset materialize`, the `dagster api execute_run` child of the code server
for runs the daemon or the UI launched). The worker is dead when no process has that pid any more, when
it is a zombie, or when the pid now belongs to a process started after the run did (pid reuse).

A pid means something only on the machine that issued it. A run is judged only when its worker is
known to be on this machine: a run launched through a code server on this machine (its
`dagster/grpc_info` tag), or any run when `workers_on_this_host` is true (one machine shares the
instance: the local profile's SQLite storage cannot be shared between machines anyway). Other runs are
reported RUNNING, which leaves them to their own code server, which fails the runs of its dead children
itself, and to `max_runtime_seconds` / the `dagster/max_runtime` tag.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._serdes import ConfigurableClassData

# psutil's create_time comes from the boot time in whole seconds, the event's timestamp from the clock:
# a process that emitted RUN_START may look up to a second younger than its event.
CLOCK_SLACK_S = 2.0
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", ""})


@dataclass(frozen=True)
class Worker:
    """The process that started executing a run: its pid, and when it said so (epoch seconds)."""

    pid: int
    started_at: float


def run_worker(instance: dg.DagsterInstance, run_id: str) -> Worker | None:
    """The latest RUN_START of the run (a resumed run has one per worker), or None before it has one."""
    records = instance.event_log_storage.get_logs_for_run(
        run_id, of_type={DagsterEventType.RUN_START}, limit=1, ascending=False
    )
    if not records or records[0].dagster_event is None or records[0].dagster_event.pid is None:
        return None
    return Worker(pid=records[0].dagster_event.pid, started_at=records[0].timestamp)


def worker_health(worker: Worker) -> CheckRunHealthResult:
    """Whether the process `worker` names still runs on this machine."""
    import psutil

    try:
        process = psutil.Process(worker.pid)
        created, status = process.create_time(), process.status()
    except psutil.NoSuchProcess:
        return CheckRunHealthResult(WorkerStatus.FAILED, f"its process (pid {worker.pid}) is gone")
    except psutil.AccessDenied:  # it exists, as another user's process: not ours to judge
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"pid {worker.pid} exists (another user's)")
    if status == psutil.STATUS_ZOMBIE:
        return CheckRunHealthResult(WorkerStatus.FAILED, f"its process (pid {worker.pid}) has exited")
    if created > worker.started_at + CLOCK_SLACK_S:
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"its process (pid {worker.pid}) is gone: that pid now belongs to a process started "
            f"{created - worker.started_at:.0f} s after the run",
        )
    return CheckRunHealthResult(WorkerStatus.RUNNING, f"pid {worker.pid} is running")


def grpc_host(tags: Mapping[str, str]) -> str | None:
    """The host of the code server that launched the run, if one did."""
    import json

    if GRPC_INFO_TAG not in tags:
        return None
    try:
        return str(json.loads(tags[GRPC_INFO_TAG]).get("host") or "")
    except ValueError:
        return None


@functools.cache
def this_host_names() -> frozenset[str]:
    """Once per process: getfqdn() may wait on DNS, and the monitoring daemon asks on every poll."""
    return frozenset({socket.gethostname(), socket.getfqdn()})


def is_this_host(host: str) -> bool:
    return host in LOCAL_HOSTS or host in this_host_names()


class MonitoredRunLauncher(dg.DefaultRunLauncher):
    """The DefaultRunLauncher, plus the worker health check that run monitoring needs."""

    def __init__(self, inst_data: ConfigurableClassData | None = None, workers_on_this_host: bool = False):
        self._workers_on_this_host = workers_on_this_host
        super().__init__(inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict:
        return {
            "workers_on_this_host": dg.Field(
                bool,
                default_value=False,
                is_required=False,
                description="Every process that executes a run of this instance runs on this machine "
                "(true for a single-machine deployment). When false, only runs launched through a code "
                "server on this machine are checked.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> MonitoredRunLauncher:
        return cls(inst_data=inst_data, workers_on_this_host=config_value.get("workers_on_this_host", False))

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        # Anything but RUNNING or SUCCESS makes the daemon fail the run: when in doubt, say RUNNING.
        host = grpc_host(run.tags)
        if host is None and not self._workers_on_this_host:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not checked: its worker's machine is unknown")
        if host is not None and not is_this_host(host):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"not checked: its worker runs on {host}")
        worker = run_worker(self._instance, run.run_id)
        if worker is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no RUN_START yet")
        return worker_health(worker)
