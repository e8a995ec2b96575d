"""The training stage on the production profile: a real `mlflow server` process on 127.0.0.1 with its
backend store in a fresh PostgreSQL database and its artifacts on S3 (moto's server), reached over HTTP
by the same assets; the lake is the production S3 lake.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests import s3_server
from tests.s3_server import S3Bucket
from tests.test_production_profile import _pg_connect, pg_database  # noqa: F401 (fixture)
from tests.test_training import (
    RELAXED_FLOOR,
    TRAINING_KEYS,
    TUNING,
    checks,
    metadata,
    probe_champion,
    training_frame,
)

s3_endpoint = s3_server.s3_endpoint
s3_bucket = s3_server.s3_bucket


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {url} not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def mlflow_server(pg_database: str, s3_bucket: S3Bucket, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """`mlflow server`: PostgreSQL backend store, artifacts proxied to s3://<bucket>/mlflow."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "mlflow-server.log"
    env = {**os.environ, "MLFLOW_S3_ENDPOINT_URL": s3_bucket.endpoint.url}
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"postgresql://postgres@127.0.0.1:5432/{pg_database}",
        "--artifacts-destination", f"s3://{s3_bucket.name}/mlflow",
        "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_training_graph_against_an_mlflow_server_with_postgres_and_s3(
    training_set_home: Path,
    mlflow_server: str,
    s3_bucket: S3Bucket,
    pg_database: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    from mlops_assets.defs.training.assets import build_training_assets
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.compute import ComputeResource
    from mlops_assets.resources.profiles import build_resources
    from mlops_assets.resources.training_plan import TrainingPlan

    monkeypatch.setenv("MLOPS_PROFILE", "production")
    monkeypatch.setenv("MLOPS_S3_BUCKET", s3_bucket.name)
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", s3_bucket.endpoint.url)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    # The training set, as features/training_set writes it on the production lake.
    pointer = json.loads((training_set_home / "lake/features/training_set/latest.json").read_text())
    for key in (pointer["key"], "features/training_set/latest.json"):
        s3_bucket.put(f"lake/{key}", (training_set_home / "lake" / key).read_bytes())

    settings = load_settings()
    resources = build_resources(settings)  # the production resources: mlflow from MLFLOW_TRACKING_URI
    resources["compute"] = ComputeResource(device="cpu", num_cpus=2)
    # The network, so that Ray Tune's trials are logged through the server too (the trees skip tuning).
    resources["training"] = TrainingPlan(
        home=str(tmp_path / "home"), holdout_days=5, valid_days=4, family="pytorch_tabular"
    )
    quick = {"models__flight_delay_model": {"config": {"ensemble_size": 2, "max_epochs": 8}}}
    result = dg.materialize(
        build_training_assets(),
        resources=resources,
        run_config={"ops": {"models__tuned_hyperparameters": {"config": TUNING}, **RELAXED_FLOOR, **quick}},
    )
    assert result.success
    registered = metadata(result, TRAINING_KEYS[4])
    assert registered["version"] == "1" and registered["champion"] == "1"
    assert checks(result)["plausible_holdout_metrics"].passed

    # The registry and the runs live in PostgreSQL ...
    with _pg_connect(pg_database) as connection, connection.cursor() as cursor:
        cursor.execute("select name, version from model_versions")
        assert cursor.fetchall() == [("flight_delay", 1)]
        cursor.execute("select alias, version from registered_model_aliases order by alias")
        assert cursor.fetchall() == [("challenger", 1), ("champion", 1)]
        cursor.execute("select count(*) from runs")
        assert cursor.fetchone()[0] == 1 + TUNING["num_samples"] + 2 + 1  # tune, trials, baselines, model
    # ... the artifacts on S3, uploaded through the server ...
    artifacts = s3_bucket.keys("mlflow/")
    names = {key.rsplit("/", 1)[-1] for key in artifacts}
    assert metadata(result, TRAINING_KEYS[2])["model_family"] == "pytorch_tabular"
    assert {"MLmodel", "weights.pt", "preprocessing.json", "calibration.png"} <= names, sorted(artifacts)[:40]
    # ... and the records of the stage on the S3 lake, not on the local disk.
    assert "lake/models/registered_model.json" in s3_bucket.keys("lake/models/")
    assert not (tmp_path / "home" / "lake").exists()

    # A fresh process reaches the champion over HTTP only: no S3 endpoint or credentials of its own.
    s3_settings = (
        "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    )
    without_s3 = dict.fromkeys(s3_settings, "")
    out = probe_champion(mlflow_server, training_frame(training_set_home).tail(20), tmp_path, env=without_s3)
    assert out["version"] == "1" and len(out["probabilities"]) == 20
