"""Every tool's command of docs/tools.md, run exactly as the page prints it.

The commands run in a copy of the repository's layout: `feature_repo/` and `dbt/` copied, `data/` a home
holding the raw and feature lake of the shared three-week training window and an MLflow store whose
`flight_delay@champion` is a small network trained here on that window's training set. `dg list defs`
runs in the repository itself (it writes nothing). No MLOPS_*, FEAST_* or DBT_* variable reaches a
command; the virtual environment's bin/ is first on PATH, as after `source .venv/bin/activate`. Servers
(`feast ui`, `mlflow ui`) start on a free port (their documented flag), must answer HTTP, and are stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import TRAINING_PLAN

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "tools.md"
SERVERS = {"feast ui": ("-p", "/projects-list.json"), "mlflow ui": ("--port", "/health")}
SERVER_START_SECONDS = 90


@dataclass
class Block:
    heading: str
    language: str
    lines: list[str] = field(default_factory=list)


def doc_blocks() -> list[Block]:
    """The fenced blocks of docs/tools.md under their `## ` heading."""
    blocks, heading, current = [], "", None
    for line in DOC.read_text().splitlines():
        if current is None and line.startswith("## "):
            heading = line[3:].strip()
        elif current is None and line.startswith("```") and len(line) > 3:
            current = Block(heading, line[3:].strip())
        elif current is not None and line.startswith("```"):
            blocks.append(current)
            current = None
        elif current is not None:
            current.lines.append(line)
    return blocks


def console_commands(block: Block) -> list[str]:
    commands = [line[2:] for line in block.lines if line.startswith("$ ")]
    assert commands and len(commands) == len([line for line in block.lines if line.strip()]), block
    return commands


def clean_env() -> dict[str, str]:
    """The environment of a user who exported nothing for the platform (mlflow.set_tracking_uri in this
    process exports MLFLOW_TRACKING_URI and MLFLOW_REGISTRY_URI: not theirs either)."""
    own = ("MLOPS_", "FEAST_", "DBT_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_and_probe(command: str, cwd: Path, env: dict[str, str]) -> int:
    """Start `command` (a server) on a free port, wait for HTTP 200 on its probe path, stop it."""
    flag, path = next(v for k, v in SERVERS.items() if command.startswith(k))
    port = free_port()
    process = subprocess.Popen(
        f"{command} {flag} {port}",
        shell=True,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read().decode()[-4000:]
            try:
                status = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
            except httpx.TransportError:
                time.sleep(1)
                continue
            return status
        raise AssertionError(f"{command} did not answer on port {port} in {SERVER_START_SECONDS}s")
    finally:
        # SIGINT, as Ctrl-C: the server shuts down and its process exits normally.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_block(block: Block, root: Path, checks: dict | None = None) -> list[tuple[str, str]]:
    """Each command of a console block in order, from `root`, following its `cd`; returns
    (command, output) pairs. `checks[command](cwd, output)` runs after a command of that text."""
    env, cwd, outputs = clean_env(), root, []
    for command in console_commands(block):
        if command.startswith("cd "):
            cwd = (cwd / command[3:].strip()).resolve()
            assert cwd.is_dir(), command
            continue
        if any(command.startswith(server) for server in SERVERS):
            assert serve_and_probe(command, cwd, env) == 200, command
            outputs.append((command, ""))
        else:
            completed = subprocess.run(
                command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
            )
            output = completed.stdout + completed.stderr
            assert completed.returncode == 0, f"`{command}` in {cwd} failed:\n{output[-6000:]}"
            outputs.append((command, output))
        if checks and command in checks:
            checks[command](cwd, outputs[-1][1])
    return outputs


# ---- the copy of the layout -------------------------------------------------------------------------


def copy_layout(target: Path, home: Path | None) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "target", "logs", "dbt_packages", "*.db")
    shutil.copytree(ROOT / "feature_repo", target / "feature_repo", ignore=ignore)
    shutil.copytree(ROOT / "dbt", target / "dbt", ignore=ignore)
    (target / "data").mkdir()
    if home is not None:
        for part in ("raw", "features"):
            shutil.copytree(home / "lake" / part, target / "data" / "lake" / part)
    return target


def train_champion(home: Path) -> None:
    """A small network on the training set, logged by the training step's own pyfunc code (signature and
    input example as `models/flight_delay_model` builds them) and registered as flight_delay@champion."""
    import mlflow

    from mlops_assets.lib.settings import Settings
    from mlops_assets.ml.bundle import ModelBundle
    from mlops_assets.ml.fit import HyperParameters, Tensors, fit
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.tracking import mlflow_resource
    from mlops_assets.training.data import load_training_data, model_input_frame, prepared_arrays
    from mlops_assets.training.pyfunc import log_flight_delay_model

    lake = LocalObjectStore(root=str(home / "lake"))
    data = load_training_data(lake, TRAINING_PLAN["holdout_days"], TRAINING_PLAN["valid_days"])
    prep, arrays = prepared_arrays(data)
    train, valid = (Tensors.from_arrays(*arrays[p], "cpu") for p in ("train", "valid"))
    hp = HyperParameters(width=16, max_epochs=2, patience=1)
    result = fit(prep, train, valid, hp, seed=0)
    bundle = ModelBundle(model=result.model.cpu(), preprocessor=prep, hyperparameters=hp)
    exported = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    experiment_id = mlflow_resource(Settings(profile="local", home=home)).activate()
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            folder = bundle.save(home / "scratch" / "bundles" / run.info.run_id)
            example = model_input_frame(data.split.valid.head(5), data.categorical, data.numeric)
            info = log_flight_delay_model(folder, example, bundle.predict(example))
        version = mlflow.register_model(info.model_uri, "flight_delay").version
        mlflow.MlflowClient().set_registered_model_alias("flight_delay", "champion", version)
    finally:
        # The store was this fixture's: the process goes back to what it had (tests set their own).
        mlflow.set_tracking_uri(exported["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(exported["MLFLOW_REGISTRY_URI"])
        for name, value in exported.items():
            if value is None:
                os.environ.pop(name, None)


@pytest.fixture(scope="module")
def layout(training_set_home, tmp_path_factory) -> Path:
    root = copy_layout(tmp_path_factory.mktemp("layout"), training_set_home)
    train_champion(root / "data")
    return root


# ---- the page ----------------------------------------------------------------------------------------


def test_the_page_documents_every_tool():
    headings = {block.heading.split(":")[0] for block in doc_blocks() if block.language == "console"}
    assert headings == {"Feast", "dbt", "Dagster", "MLflow"}
    assert [b.heading for b in doc_blocks() if b.language == "python"] == ["The champion as an MLflow pyfunc"]


def _no_online_store(cwd: Path, output: str) -> None:
    assert not (cwd.parent / "data" / "feast" / "online.db").exists(), "feast plan created the online store"


def _nothing_changed(cwd: Path, output: str) -> None:
    assert "No changes to registry" in output and "No changes to infrastructure" in output, output


def test_feast_commands_as_documented(layout):
    feast = [b for b in doc_blocks() if b.heading.startswith("Feast") and b.language == "console"]
    assert len(feast) == 2
    first = feast[0]
    assert console_commands(first) == [
        "cd feature_repo",
        "feast plan",
        "feast apply",
        "feast plan",
        "feast ui",
    ]
    # The first plan on a home without an online store must leave none; the plan after apply sees no change.
    seen = {"plan": 0}

    def after_plan(cwd: Path, output: str) -> None:
        seen["plan"] += 1
        (_no_online_store if seen["plan"] == 1 else _nothing_changed)(cwd, output)

    run_block(first, layout, {"feast plan": after_plan})
    assert seen["plan"] == 2
    assert (layout / "data" / "feast" / "online.db").stat().st_size > 0  # apply created the tables
    outputs = run_block(feast[1], layout)
    assert "No changes to registry" in outputs[-1][1], outputs[-1][1]


def test_feast_plan_after_the_platform_apply_reports_no_change(training_set_home, tmp_path):
    """The platform's `features/feature_views` apply and the CLI build the same objects with the same
    source paths: `feast plan` from feature_repo/ after it finds nothing to update."""
    from mlops_assets.resources.feature_store import FeastResource

    root = copy_layout(tmp_path, None)
    FeastResource(profile="local", home=str(root / "data"), repo_dir=str(root / "feature_repo")).apply()
    completed = subprocess.run(
        ["feast", "plan"], cwd=root / "feature_repo", env=clean_env(), capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "No changes to registry" in completed.stdout, completed.stdout
    assert "Updated" not in completed.stdout


def test_feature_store_yaml_is_the_local_profile_of_the_default_home(tmp_path):
    """feature_repo/feature_store.yaml (for the CLI) and profiles/local.yaml rendered by the platform for
    MLOPS_HOME = <repo>/data name the same store."""
    import yaml

    from mlops_assets.resources.feature_store import FeastResource

    repo = ROOT / "feature_repo"
    cli = yaml.safe_load((repo / "feature_store.yaml").read_text())
    for section in ("registry", "online_store"):
        cli[section]["path"] = str((repo / cli[section]["path"]).resolve())
    rendered = FeastResource(profile="local", home=str(ROOT / "data")).rendered_config()
    assert cli == rendered


def test_feast_production_profile_is_one_flag(tmp_path):
    """`-f profiles/production.yaml` from feature_repo/ resolves against the current folder and renders
    with the production variables (the plan itself needs S3 and Redis: not run here)."""
    block = next(b for b in doc_blocks() if b.heading.startswith("Feast") and b.language == "shell")
    assert "feast -f profiles/production.yaml plan" in block.lines
    env = {
        **clean_env(),
        "MLOPS_PROFILE": "production",
        "MLOPS_S3_BUCKET": "tools-bucket",
        "MLOPS_REDIS_URL": "redis.example:6379",
    }
    completed = subprocess.run(
        ["feast", "-f", "profiles/production.yaml", "configuration"],
        cwd=copy_layout(tmp_path, None) / "feature_repo",
        env=env,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "s3://tools-bucket/feast/registry.db" in completed.stdout
    assert "redis.example:6379" in completed.stdout and "project: flight_delay" in completed.stdout


def test_dbt_build_as_documented(layout):
    block = next(b for b in doc_blocks() if b.heading.startswith("dbt") and b.language == "console")
    outputs = run_block(block, layout)
    assert re.search(r"PASS=\d+ WARN=\d+ ERROR=0", outputs[-1][1]), outputs[-1][1][-3000:]
    assert (layout / "data" / "warehouse.duckdb").exists()


def test_the_views_of_a_hand_run_dbt_build_read_from_anywhere(layout, monkeypatch):
    """`dbt build` typed in dbt/ makes views over `../data/lake/...`; the platform, running from another
    folder, reads them through its warehouse resource all the same."""
    from mlops_assets.resources.warehouse import DuckDBWarehouse
    from mlops_assets.transform import dbt_project

    block = next(b for b in doc_blocks() if b.heading.startswith("dbt") and b.language == "console")
    run_block(block, layout)
    monkeypatch.setattr(dbt_project, "DBT_PROJECT_DIR", layout / "dbt")  # the layout is the repository here
    monkeypatch.chdir(layout)  # where `make` and `dagster dev` run: ../data is not the home from here
    warehouse = DuckDBWarehouse(path=str(layout / "data" / "warehouse.duckdb"))
    rows = warehouse.query_arrow("select count(*) as n from staging.stg_weather").column("n")[0].as_py()
    assert rows > 0


def test_dg_list_defs_as_documented():
    block = next(b for b in doc_blocks() if b.heading.startswith("Dagster"))
    outputs = run_block(block, ROOT)
    assert "retrain_model" in outputs[-1][1] and "flight_delay_model" in outputs[-1][1]


def test_mlflow_ui_as_documented(layout):
    block = next(b for b in doc_blocks() if b.heading.startswith("MLflow"))
    assert (layout / "data" / "mlflow" / "mlflow.db").exists()
    run_block(block, layout)


def test_the_champion_predicts_the_training_sets_own_rows(layout):
    """The page's Python block, run as printed from the layout's root: the pyfunc takes the training
    set's Parquet with its own dtypes (int32 hour and weekday codes)."""
    code = "\n".join(next(b for b in doc_blocks() if b.language == "python").lines)
    latest = json.loads((layout / "data/lake/features/training_set/latest.json").read_text())
    frame = pd.read_parquet(layout / "data/lake" / latest["key"])
    assert str(frame["flight_schedule__sched_dep_hour_local"].dtype) == "int32"
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=layout, env=clean_env(), capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-6000:]
    assert f"count    {len(frame)}" in completed.stdout.replace(".000000", ""), completed.stdout


# ---- the demo's retraining ---------------------------------------------------------------------------


def test_the_demos_retraining_is_a_run_of_the_retraining_job(tmp_path, monkeypatch):
    """`mlops demo` / `mlops retrain` launch `retrain_model` itself with the sensor's RunRequest: the
    instance records a run of that job with the request's tags. The home is empty, so the run fails at
    its first step, after the instance has it: what the UI lists is what this test asserts."""
    import dagster as dg

    from mlops_assets.definitions import build_definitions
    from mlops_assets.lib.job_runs import execute_request
    from mlops_assets.monitoring.retraining import JOB_NAME, RETRAIN_SELECTION, Decision

    request = Decision(True, "drift", ("2013-02-01", "2013-02-10"), "v1:2013-02-10").run_request(
        {"mlops/trigger": "sensor"}
    )
    job = build_definitions("local").resolve_job_def(JOB_NAME)
    assert set(job.asset_layer.executable_asset_keys) == set(RETRAIN_SELECTION)
    assert dg.validate_run_config(job, request.run_config)

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit, match=f"job {JOB_NAME} failed"):
        execute_request(JOB_NAME, request)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        runs = instance.get_runs()
    assert [run.job_name for run in runs] == ["retrain_model"]
    assert request.tags.items() <= runs[0].tags.items()
    assert runs[0].run_config["ops"] == request.run_config["ops"]
