"""The local MLflow store is created whole or not at all: a process killed while MLflow builds its tables
(about thirty schema migrations, seconds on SQLite) leaves no store that later runs fail to open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# What a training step does first: open the store (creating it when missing) and its experiment.
ACTIVATE = (
    "import sys; from mlops_assets.resources.tracking import MlflowResource; "
    "MlflowResource(tracking_uri=sys.argv[1]).activate()"
)


def wait_for_first_file(folder: Path, child: subprocess.Popen, timeout_s: float = 60) -> None:
    """Until the child has written a file into `folder`: MLflow has started building its tables."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.poll() is None:
        if folder.exists() and any(folder.iterdir()):
            return
        time.sleep(0.01)
    raise AssertionError(f"no file in {folder} after {timeout_s} s (child exit {child.poll()})")


@pytest.mark.parametrize("kill_after_s", [0.05, 0.2, 0.4, 0.8])
def test_a_store_creation_killed_midway_leaves_a_store_that_opens(tmp_path: Path, kill_after_s: float):
    from mlops_assets.resources.tracking import MlflowResource

    store = tmp_path / "mlflow" / "mlflow.db"
    uri = f"sqlite:///{store}"
    store.parent.mkdir(parents=True)
    child = subprocess.Popen(
        [sys.executable, "-c", ACTIVATE, uri], env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    wait_for_first_file(store.parent, child)
    time.sleep(kill_after_s)
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # Either the store is complete (the child finished) or it is absent; never half-built.
    resource = MlflowResource(tracking_uri=uri, artifact_location=(tmp_path / "artifacts").as_uri())
    assert resource.activate()
    client = resource.client()
    assert client.search_registered_models() == []
    assert [p.name for p in store.parent.iterdir() if not p.name.startswith(".")] == ["mlflow.db"]


def test_an_existing_store_is_never_replaced(tmp_path: Path):
    from mlops_assets.resources.tracking import MlflowResource, create_sqlite_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    resource = MlflowResource(tracking_uri=uri, artifact_location=(tmp_path / "artifacts").as_uri())
    experiment = resource.activate()
    create_sqlite_store(uri)
    assert resource.activate() == experiment
    assert "flight_delay" in [e.name for e in resource.client().search_experiments()]
