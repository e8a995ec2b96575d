"""A two-node Ray cluster on 127.0.0.1: `ray start --head` and a second `ray start --address`, each in
the foreground (`--block`) under the cluster's PID files, so `mlops cluster down` stops exactly these
processes (`ray stop` would stop every Ray process of the machine, other homes' included).

The head's GCS listens on 6380 (6379 is Redis's on this kind of machine). The cluster keeps its session
files in a temp dir of its own: a plain `ray.init()` elsewhere looks for a cluster to join in Ray's
default temp dir and so never joins this one by accident; a step joins it only through
`MLOPS_RAY_ADDRESS=127.0.0.1:6380`.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from mlops_assets.cluster.daemons import ClusterDir, Daemon


@dataclass(frozen=True)
class RayClusterSpec:
    gcs_port: int = 6380
    # The second node's raylet: fixed ports, so `status` and the readiness check know where to look.
    worker_node_manager_port: int = 6391
    worker_object_manager_port: int = 6392
    cpus_per_node: int = 1

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"


def temp_dir(folder: ClusterDir) -> Path:
    """Short on purpose: Ray's Unix sockets live under it and a socket path is limited to 107 bytes."""
    digest = hashlib.sha1(str(folder.root).encode()).hexdigest()[:10]
    return Path("/tmp") / f"mlops-ray-{digest}"


def _ray() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("the `ray` command is not installed beside this Python (pip install 'ray[tune]')")
    return found


# A node holds nothing that outlives it (Tune's results are written by the driver), so `cluster down`
# does what `ray stop --force` would after this grace, instead of waiting out Ray's own (~30 s a node).
RAY_STOP_GRACE_S = 3.0


def daemons(spec: RayClusterSpec, folder: ClusterDir) -> list[Daemon]:
    """Head, then the second node."""
    ray = _ray()
    common = ["--block", "--num-cpus", str(spec.cpus_per_node), "--node-ip-address", "127.0.0.1",
              "--disable-usage-stats"]  # fmt: skip
    # Ray 2.60 turns token authentication on for `ray start --head`, and every node and driver must
    # then present the token. This is a development cluster of one machine, which steps join with
    # nothing but MLOPS_RAY_ADDRESS; a shared cluster keeps token auth (docs/production.md).
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    head = Daemon(
        name="ray-head",
        command=[
            ray,
            "start",
            "--head",
            "--port",
            str(spec.gcs_port),
            "--include-dashboard",
            "false",
            "--temp-dir",
            str(temp_dir(folder)),
            *common,
        ],
        port=spec.gcs_port,
        marker="--head",
        env=env,
        stop_grace_s=RAY_STOP_GRACE_S,
    )
    worker = Daemon(
        name="ray-worker",
        command=[
            ray,
            "start",
            "--address",
            spec.address,
            "--node-manager-port",
            str(spec.worker_node_manager_port),
            "--object-manager-port",
            str(spec.worker_object_manager_port),
            *common,
        ],
        port=spec.worker_node_manager_port,
        marker=f"--address {spec.address}",
        env=env,
        stop_grace_s=RAY_STOP_GRACE_S,
    )
    return [head, worker]


def alive_nodes(spec: RayClusterSpec, wait_for: int = 0, timeout: float = 60.0) -> list[dict]:
    """The cluster's live nodes as Ray's GCS reports them, through a short-lived driver connection;
    with `wait_for`, polls until that many are alive (a new node registers a few seconds after its
    raylet listens) or `timeout` has passed."""
    import time

    import ray

    ray.init(address=spec.address, logging_level="ERROR", log_to_driver=False)
    try:
        deadline = time.monotonic() + timeout
        while True:
            nodes = [node for node in ray.nodes() if node.get("Alive")]
            if len(nodes) >= wait_for or time.monotonic() > deadline:
                return nodes
            time.sleep(0.5)
    finally:
        ray.shutdown()
