"""Shared fixtures: a local landing zone and lake in a temporary directory, and in-process runs."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.lib.calendar import partition_range_tags
from mlops_assets.resources.storage import LocalObjectStore

# Great Expectations, MLflow and Ray would otherwise try to send usage statistics.
for _name, _value in (
    ("GX_ANALYTICS_ENABLED", "false"),
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("RAY_USAGE_STATS_ENABLED", "0"),
    ("DO_NOT_TRACK", "true"),
):
    os.environ.setdefault(_name, _value)


# The modules that take longest, in the order the two workers should start them (longest first, so neither
# worker is left with a long module at the end; the two cluster modules far enough apart that the second
# rarely waits for `cluster_ports`). The others follow in collection order.
SLOW_MODULES_FIRST = (
    "test_training.py",
    "test_production_e2e.py",
    "test_loop.py",
    "test_shadow.py",
    "test_cluster.py",
    "test_tool_commands.py",
    "test_killed_runs.py",
    "test_training_production.py",
    "test_warehouse_production.py",
    "test_serving.py",
    "test_metrics.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module keeps its order


@pytest.fixture(scope="module")
def cluster_ports():
    """Held for a whole module: the machine-wide lock on the local cluster's fixed ports (Spark
    7077/8080/8081/15002, Ray 6380/6391/6392) and the Celery queue `dagster`. `make test` runs modules on
    two pytest-xdist workers (`--dist loadscope`), and two modules that start the cluster would otherwise
    fight over them; so would two test sessions on one machine."""
    import tempfile

    from filelock import FileLock

    with FileLock(Path(tempfile.gettempdir()) / "mlops-tests-cluster-ports.lock"):
        yield


FIRST_DAYS = (dt.date(2013, 1, 1), dt.date(2013, 1, 3))  # a small window of real data


@pytest.fixture
def broker():
    """A RabbitMQ exchange and queue of this test alone, deleted afterwards."""
    from mlops_assets.resources.broker import LOCAL_BROKER_URL, RabbitMQBroker
    from tests.services import require_service

    require_service("rabbitmq")
    name = f"mlops-test-{uuid.uuid4().hex[:12]}"
    broker = RabbitMQBroker(url=LOCAL_BROKER_URL, exchange=name, queue=f"{name}.lake")
    broker.declare()
    yield broker
    broker.delete()


@pytest.fixture
def stores(tmp_path: Path) -> tuple[LocalObjectStore, LocalObjectStore]:
    """(landing_zone, lake) on the local file system."""
    return LocalObjectStore(root=str(tmp_path / "landing")), LocalObjectStore(root=str(tmp_path / "lake"))


@pytest.fixture
def replayed(stores) -> tuple[LocalObjectStore, LocalObjectStore]:
    """The first three days of 2013 and the reference tables, delivered into the landing zone."""
    from mlops_assets.replay import replay

    landing, lake = stores
    replay(landing, *FIRST_DAYS)
    return landing, lake


def raw_assets() -> list[dg.AssetsDefinition]:
    from mlops_assets.defs.ingestion.assets import build_raw_assets

    return list(build_raw_assets())


def materialize_raw(
    landing,
    lake,
    selection: list[str],
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize raw assets in-process against the given stores (and instance, if any)."""
    tags = partition_range_tags(*partition_range) if partition_range else {}
    return dg.materialize(
        raw_assets(),
        selection=selection,
        partition_key=partition_key,
        resources={"landing_zone": landing, "lake": lake},
        instance=instance,
        tags=tags,
        raise_on_error=raise_on_error,
        run_config=run_config,
    )


@pytest.fixture
def reference_ready(replayed):
    """Landing zone replayed and the reference tables materialized into the lake."""
    landing, lake = replayed
    materialize_raw(landing, lake, ["raw/airlines", "raw/airports", "raw/planes"])
    return landing, lake


def build_real_warehouse(home: Path, window: tuple[str, str]) -> LocalObjectStore:
    """Real days replayed into `home`, the raw assets and dbt materialized; returns the lake."""
    from mlops_assets.replay import replay
    from tests.test_dbt import DAILY_MODELS, REFERENCE_MODELS, run_dbt, transform_definitions

    landing, lake = LocalObjectStore(root=str(home / "landing")), LocalObjectStore(root=str(home / "lake"))
    replay(landing, dt.date.fromisoformat(window[0]), dt.date.fromisoformat(window[1]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.setenv("DBT_TARGET_PATH", str(home / "dbt-target"))
        materialize_raw(landing, lake, ["raw/airlines", "raw/airports", "raw/planes"])
        materialize_raw(landing, lake, ["raw/flights", "raw/weather"], partition_range=window)
        defs = transform_definitions()
        assert run_dbt(defs, REFERENCE_MODELS).success
        assert run_dbt(defs, DAILY_MODELS, tags=partition_range_tags(*window)).success
    return lake


# A small real window for the training stage: three weeks of January, features computed with the
# DuckDB implementation (tested equal to the Spark asset) so the fixture costs seconds, not a JVM.
TRAINING_WINDOW = ("2013-01-01", "2013-01-21")
TRAINING_PLAN = {"holdout_days": 5, "valid_days": 4}


@pytest.fixture(scope="session")
def training_set_home(tmp_path_factory) -> Path:
    """MLOPS_HOME with a real training set of TRAINING_WINDOW in its lake (and latest.json naming it)."""
    from mlops_assets.defs.features.feast_assets import build_feast_assets
    from mlops_assets.features.inputs import read_warehouse_inputs
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.warehouse import DuckDBWarehouse
    from tests.test_flight_features import _write_feature_lake, duckdb_tables

    home = tmp_path_factory.mktemp("training_home")
    first, last = (dt.date.fromisoformat(d) for d in TRAINING_WINDOW)
    lake = build_real_warehouse(home, TRAINING_WINDOW)
    flights, weather = read_warehouse_inputs(home / "warehouse.duckdb", first, last)
    _write_feature_lake(duckdb_tables(flights, weather, first, last), home)
    result = dg.materialize(
        build_feast_assets(),
        selection=[dg.AssetKey(["features", "feature_views"]), dg.AssetKey(["features", "training_set"])],
        resources={
            "feast": FeastResource(profile="local", home=str(home)),
            "lake": lake,
            "warehouse": DuckDBWarehouse(path=str(home / "warehouse.duckdb")),
        },
        run_config={
            "ops": {
                "features__training_set": {
                    "config": {"start_date": TRAINING_WINDOW[0], "end_date": TRAINING_WINDOW[1]}
                }
            }
        },
    )
    assert result.success
    return home


def _without_state(source: Path):
    """copytree's ignore: everything but the MLflow and Feast state, scratch space and model records, so
    a copy can register its own version 1 and apply its own Feast registry."""
    skipped = {source: {"mlflow", "feast", "scratch", "probe_rows.parquet"}, source / "lake": {"models"}}

    def ignore(directory: str, names: list[str]) -> set[str]:
        return skipped.get(Path(directory), set()) & set(names)

    return ignore


@pytest.fixture(scope="session")
def champion_home(training_set_home, tmp_path_factory) -> Path:
    """A copy of `training_set_home` (which stays untouched: test_training registers its own version 1)
    with the Feast registry applied, the SQLite online store materialized for TRAINING_WINDOW and the
    training graph run once, so that version 1 of flight_delay is the champion."""
    return build_champion_in(training_set_home, tmp_path_factory.mktemp("champion_home"))


def build_champion_in(
    training_set_home: Path,
    home: Path,
    family: str = "pytorch_tabular",
    feature_service: str | None = None,
) -> Path:
    """`champion_home`'s recipe into an empty folder `home` (tests that change the home take their own).

    The champion is a network unless `family` says otherwise (the serving tests of the numpy network need
    one); `feature_service` rebuilds the training set with that service first (an older model's)."""
    import shutil

    from mlops_assets.defs.features.feast_assets import build_feast_assets
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.warehouse import DuckDBWarehouse
    from tests.test_training import RELAXED_FLOOR, run_training, training_resources

    shutil.copytree(training_set_home, home, dirs_exist_ok=True, ignore=_without_state(training_set_home))
    feast_resources = {
        "feast": FeastResource(profile="local", home=str(home)),
        "lake": LocalObjectStore(root=str(home / "lake")),
        "warehouse": DuckDBWarehouse(path=str(home / "warehouse.duckdb")),
    }
    result = dg.materialize(
        build_feast_assets(),
        selection=[dg.AssetKey(["features", "feature_views"]), dg.AssetKey(["features", "online_store"])],
        resources=feast_resources,
        tags=partition_range_tags(*TRAINING_WINDOW),
    )
    assert result.success
    if feature_service:
        window = {"start_date": TRAINING_WINDOW[0], "end_date": TRAINING_WINDOW[1]}
        rebuilt = dg.materialize(
            build_feast_assets(),
            selection=[dg.AssetKey(["features", "training_set"])],
            resources=feast_resources,
            run_config={
                "ops": {"features__training_set": {"config": {**window, "feature_service": feature_service}}}
            },
        )
        assert rebuilt.success
    # A two-network ensemble with a short epoch budget: the service needs a real champion, not a good one.
    quick = {"models__flight_delay_model": {"config": {"ensemble_size": 2, "max_epochs": 8}}}
    assert run_training(training_resources(home, family=family), ops={**RELAXED_FLOOR, **quick}).success
    return home


def started_run(instance: dg.DagsterInstance, job_name: str) -> dg.DagsterRun:
    """A run that the instance sees as STARTED, as a daemon-launched run would be (no step executes)."""
    import time

    run = instance.create_run_for_job(dg.GraphDefinition(job_name).to_job(), run_id=None)
    instance.handle_new_event(
        dg.EventLogEntry(
            error_info=None, level="INFO", user_message="", run_id=run.run_id, timestamp=time.time(),
            dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=job_name),
        )
    )  # fmt: skip
    return instance.get_run_by_id(run.run_id)
