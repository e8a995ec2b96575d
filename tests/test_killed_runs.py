"""A run whose process is killed (kill -9) is marked failed, leaves no partial output, reruns cleanly.

One home and one Dagster instance (the repository's deploy/local/dagster.yaml, with run monitoring
polling every second) for the whole module, and one real `dagster-daemon run` doing the monitoring.
Stage by stage, in graph order: a `dagster asset materialize` of the stage's selection is started as a
user would, killed with SIGKILL once the stage's step has started, and then:
- the daemon marks the run FAILURE within the bound;
- every file a reader can see in the lake is whole (temporary and staging files have hidden names),
  the warehouse and the online store open and answer;
- the same command run again succeeds, and its output holds no duplicate rows;
and at the end a run submitted to the queue is launched by the daemon and succeeds: nine killed runs
left STARTED would hold every one of the four run slots.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[1]
QUEUE_PROBE = REPO / "tests" / "probes" / "queue_probe.py"
WINDOW = ("2013-01-01", "2013-01-03")
SERVED = ("2013-01-03", "2013-01-03")
# The bound the test holds the platform to, with the daemon polling every second (deploy/*'s 10-15 s
# polls give about that much more; docs/operations.md).
MARKED_FAILED_WITHIN_S = 30.0
RERUN_TIMEOUT_S = 300
# Three days cannot hold the default 14 + 14 days of validation and holdout.
PLAN = {"training": {"config": {"holdout_days": 1, "valid_days": 1}}}
# Ray Tune runs only for a family that trains the network (the default, the trees, skips it).
TUNING_PLAN = {"training": {"config": {**PLAN["training"]["config"], "family": "pytorch_tabular"}}}
TUNING = {"num_samples": 2, "max_epochs": 1, "grace_period": 1}
MODEL = {"ensemble_size": 1, "max_epochs": 3}
RELAXED_FLOOR = {"floor_margin": -0.5, "ece_tolerance": 1.0}
RESULTS: dict[str, dict] = {}


def _range(days: tuple[str, str]) -> tuple[str, ...]:
    return ("--partition-range", f"{days[0]}...{days[1]}")


def _days(days: tuple[str, str]) -> list[str]:
    first, last = (dt.date.fromisoformat(d) for d in days)
    return [str(first + dt.timedelta(days=i)) for i in range((last - first).days + 1)]


@dataclass
class Platform:
    home: Path
    env: dict[str, str]
    instance: dg.DagsterInstance
    daemon: subprocess.Popen
    logs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.logs = self.home / "logs"
        self.logs.mkdir(exist_ok=True)

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    def start(self, selection: str, options: tuple[str, ...], run_config: dict, log: str) -> subprocess.Popen:
        from mlops_assets.demo import materialize_command

        command = materialize_command(selection, *options, "--config-json", json.dumps(run_config))
        with open(self.logs / f"{log}.log", "w") as out:
            return subprocess.Popen(
                command, env=self.env, cwd=self.home, stdout=out, stderr=subprocess.STDOUT
            )

    def materialize(self, selection: str, options: tuple[str, ...], run_config: dict, log: str) -> float:
        """Runs the command to its end; returns its wall time. Fails the test with its log's tail."""
        started = time.monotonic()
        process = self.start(selection, options, run_config, log)
        try:
            code = process.wait(timeout=RERUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = "timeout"
        assert code == 0, f"{selection} ended with {code}:\n{self.tail(log)}"
        return time.monotonic() - started

    def tail(self, log: str, chars: int = 6000) -> str:
        return (self.logs / f"{log}.log").read_text(errors="replace")[-chars:]


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Platform:
    import yaml

    from mlops_assets.replay import replay
    from mlops_assets.resources.storage import LocalObjectStore

    home = tmp_path_factory.mktemp("killed_runs")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    config = yaml.safe_load((REPO / "deploy" / "local" / "dagster.yaml").read_text())
    config["run_monitoring"].update(poll_interval_seconds=1, free_slots_after_run_end_seconds=1)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "DBT_TARGET_PATH": str(home / "dbt-target"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("MLOPS_PROFILE", None)
    first, last = (dt.date.fromisoformat(d) for d in WINDOW)
    replay(LocalObjectStore(root=str(home / "landing")), first, last)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(dagster_home))
        patch.setenv("MLOPS_HOME", str(home))
        # The instance's SQLite files are created here, before two processes could race to create them.
        with dg.DagsterInstance.get() as instance:
            daemon, daemon_log = start_daemon(env, home)
            try:
                platform = Platform(home=home, env=env, instance=instance, daemon=daemon)
                references = "raw/airlines,raw/airports,raw/planes,stg_airlines,stg_airports,stg_planes," + (
                    "features/feature_views"  # `feast apply`: unpartitioned, so not in a ranged run
                )
                platform.materialize(references, (), {}, "setup-reference")
                wait_for_monitoring(instance, daemon, home)
                yield platform
            finally:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
                daemon_log.close()
                print_results()


def start_daemon(env: dict[str, str], home: Path):
    """`dagster-daemon run` over the queue probe's location, and its log."""
    log = open(home / "daemon.log", "w")  # noqa: SIM115 (open for the daemon's whole life)
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-f", str(QUEUE_PROBE)],
        env=env,
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return daemon, log


def wait_for_monitoring(instance: dg.DagsterInstance, daemon: subprocess.Popen, home: Path) -> None:
    deadline = time.monotonic() + 90
    while "MONITORING" not in instance.get_daemon_heartbeats():
        assert daemon.poll() is None and time.monotonic() < deadline, (home / "daemon.log").read_text()[
            -3000:
        ]
        time.sleep(0.5)


def print_results() -> None:
    if not RESULTS:
        return
    nan = float("nan")
    print("\nstage | step | killed after step start (s) | marked FAILURE after (s) | partial output | "
          "left running | rerun (s) | duplicates | hidden leftovers")  # fmt: skip
    for name, row in RESULTS.items():
        print(
            f"{name} | {row['step']} | {row.get('killed_after_s', nan):.1f} | "
            f"{row.get('failed_after_s', nan):.1f} | {row.get('partial') or 'none'} | "
            f"{row.get('orphans') or 'none'} | "
            f"{row.get('rerun_s', nan):.1f} | {row.get('duplicates', '?')} | "
            f"{row.get('hidden_leftovers') or 'none'}"
        )


# --- what a reader can see ------------------------------------------------------------------------


def hidden(relative: Path) -> bool:
    """A name readers skip: the platform's temporary and staging names (a leading '.' or '_')."""
    return any(part.startswith((".", "_")) for part in relative.parts)


def unreadable_outputs(lake: Path) -> list[str]:
    """Visible lake files that are not whole: a Parquet file without its footer, JSON cut short."""
    import pyarrow.parquet as pq

    broken = []
    for path in sorted(p for p in lake.rglob("*") if p.is_file()):
        relative = path.relative_to(lake)
        if hidden(relative):
            continue
        try:
            if path.suffix == ".parquet":
                pq.read_table(path)
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".html":
                assert path.read_text(errors="replace").rstrip().endswith("</html>")
        except Exception as error:
            broken.append(f"{relative}: {type(error).__name__}")
    return broken


def hidden_leftovers(lake: Path) -> list[str]:
    return sorted(
        str(p.relative_to(lake))
        for p in lake.rglob("*")
        if p.name.startswith((".", "_")) and not hidden(p.parent.relative_to(lake))
    )


def warehouse_problem(home: Path) -> str | None:
    """The DuckDB warehouse opens and answers (a killed dbt leaves it at its last commit)."""
    import duckdb

    path = home / "warehouse.duckdb"
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as connection:
            connection.execute("select count(*) from information_schema.tables").fetchall()
    except Exception as error:
        return f"warehouse: {error}"
    return None


def online_store_problem(home: Path) -> str | None:
    for path in home.glob("feast/online*.db"):  # registry.db is Feast's protobuf, not SQLite
        with sqlite3.connect(path) as connection:
            result = connection.execute("pragma integrity_check").fetchone()[0]
        if result != "ok":
            return f"{path.name}: {result}"
    return None


# --- duplicates, per stage ------------------------------------------------------------------------


def _parquet(path: Path):
    import pandas as pd

    return pd.read_parquet(path)


def _duplicated(frame, key: list[str] | None = None) -> int:
    return int(frame.duplicated(subset=key).sum())


def _fct_flights(home: Path):
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute("select * from marts.fct_flights").df()


def check_raw_flights(home: Path) -> str:
    import pandas as pd

    for day in _days(WINDOW):
        stored = _parquet(home / "lake" / "raw" / "flights" / f"{day}.parquet")
        landed = pd.read_csv(home / "landing" / "flights" / f"{day}.csv")
        assert len(stored) == len(landed), (day, len(stored), len(landed))
        assert _duplicated(stored) == 0, day
    return "0 (rows = landed rows, every day)"


def check_fct_flights(home: Path) -> str:
    fct = _fct_flights(home)
    raw = sum(len(_parquet(home / "lake" / "raw" / "flights" / f"{d}.parquet")) for d in _days(WINDOW))
    assert _duplicated(fct, ["flight_id"]) == 0
    assert len(fct) == raw, (len(fct), raw)
    return f"0 ({len(fct)} flights = raw rows)"


def check_flight_features(home: Path) -> str:
    fct = _fct_flights(home)
    for day in _days(WINDOW):
        schedule = _parquet(home / "lake" / "features" / "flight_schedule" / f"{day}.parquet")
        assert _duplicated(schedule, ["flight_id"]) == 0, day
        assert len(schedule) == int((fct["flight_date"].astype(str) == day).sum()), day
    return "0 (one row per flight and day)"


def check_online_store(home: Path) -> str:
    rows = 0
    for path in home.glob("feast/online*.db"):
        with sqlite3.connect(path) as connection:
            tables = [t for (t,) in connection.execute("select name from sqlite_master where type='table'")]
            for table in tables:
                columns = [c[1] for c in connection.execute(f'pragma table_info("{table}")')]
                if {"entity_key", "feature_name"} <= set(columns):
                    total, distinct = connection.execute(
                        f'select count(*), count(distinct entity_key || feature_name) from "{table}"'
                    ).fetchone()
                    assert total == distinct, table
                    rows += total
    assert rows > 0
    return f"0 ({rows} online rows, one per entity and feature)"


def check_training_set(home: Path) -> str:
    pointer = json.loads((home / "lake" / "features" / "training_set" / "latest.json").read_text())
    key = pointer.get("key") or pointer.get("path")
    frame = _parquet(home / "lake" / key)
    assert _duplicated(frame, ["flight_id"]) == 0
    return f"0 ({len(frame)} rows, one per flight)"


def check_tuning(home: Path) -> str:
    record = json.loads((home / "lake" / "models" / "tuned_hyperparameters.json").read_text())
    assert record
    return "n/a (one record)"


def check_training(home: Path) -> str:
    from contextlib import closing

    json.loads((home / "lake" / "models" / "flight_delay_model.json").read_text())
    with closing(sqlite3.connect(home / "mlflow" / "mlflow.db")) as connection:
        (versions,) = connection.execute(
            "select count(*) from model_versions where name = 'flight_delay'"
        ).fetchone()
        (running,) = connection.execute("select count(*) from runs where status = 'RUNNING'").fetchone()
    assert versions == 1, f"{versions} registered versions"
    return f"0 (one registered version; MLflow runs left RUNNING by the kill: {running})"


def check_batch_predictions(home: Path) -> str:
    fct = _fct_flights(home)
    for day in _days(SERVED):
        frame = _parquet(home / "lake" / "predictions" / "batch" / f"{day}.parquet")
        assert _duplicated(frame, ["flight_id"]) == 0, day
        assert len(frame) <= int((fct["flight_date"].astype(str) == day).sum()), day
    return "0 (one prediction per flight)"


def check_drift_report(home: Path) -> str:
    records = [
        json.loads(p.read_text()) for p in (home / "lake" / "monitoring" / "drift_report").glob("*.json")
    ]
    days = [r["day"] for r in records]
    assert sorted(days) == _days(SERVED), days
    return "0 (one report per day)"


def spark_is_writing(lake: Path) -> bool:
    """Spark has begun writing part files into the features' hidden staging folder."""
    return any((lake / "features").glob(".staging-*/**/*.parquet"))


@dataclass(frozen=True)
class Stage:
    name: str
    selection: str
    step: str
    check: Callable[[Path], str]
    options: tuple[str, ...] = ()
    ops: dict = field(default_factory=dict)
    # Seconds between the step's start and the kill: into its work, before it can end.
    delay_s: float = 2.0
    # Materializations to see before the kill (dbt: its staging models are built, fct_flights is next).
    after: tuple[str, ...] = ()
    resources: dict = field(default_factory=dict)
    # A sign in the lake that the step is writing its output (killed then, it is killed mid-write).
    writing: Callable[[Path], bool] | None = None
    # Assets the next stages need that are not killed here: materialized after the rerun, before the check.
    then: str | None = None

    def run_config(self, home: Path) -> dict:
        resources = {
            name: {"config": {**value["config"], **({"home": str(home)} if name == "training" else {})}}
            for name, value in self.resources.items()
        }
        return {
            **({"ops": self.ops} if self.ops else {}),
            **({"resources": resources} if resources else {}),
        }


STAGES = [
    Stage("ingestion", "raw/flights,raw/weather", "raw__flights", check_raw_flights, _range(WINDOW)),
    Stage(
        "dbt",
        "stg_flights,stg_weather,fct_flights",
        "dbt_daily_models",
        check_fct_flights,
        _range(WINDOW),
        delay_s=0.0,
        after=("stg_flights", "stg_weather"),
    ),
    Stage(
        "spark features",
        "features/flight_features",
        "features__flight_features",
        check_flight_features,
        _range(WINDOW),
        delay_s=0.5,
        writing=spark_is_writing,
    ),
    Stage(
        "online store",
        "features/online_store",
        "features__online_store",
        check_online_store,
        _range(WINDOW),
    ),
    Stage(
        "training set",
        "features/training_set",
        "features__training_set",
        check_training_set,
        ops={"features__training_set": {"config": {"start_date": WINDOW[0], "end_date": WINDOW[1]}}},
    ),
    Stage(
        "tuning",
        "models/tuned_hyperparameters",
        "models__tuned_hyperparameters",
        check_tuning,
        ops={"models__tuned_hyperparameters": {"config": TUNING}},
        delay_s=5.0,
        resources=TUNING_PLAN,
        # the model step reads the baselines' record (the trees' configuration): made once, not killed
        then="models/baselines",
    ),
    Stage(
        "training",
        "models/flight_delay_model",
        "models__flight_delay_model",
        check_training,
        ops={
            "models__flight_delay_model": {"config": MODEL},
            "models__registered_model": {"config": RELAXED_FLOOR},
        },
        delay_s=1.5,
        resources=PLAN,
        # the champion that batch predictions need
        then="models/model_evaluation,models/registered_model",
    ),
    Stage(
        "batch predictions",
        "predictions/batch_predictions",
        "predictions__batch_predictions",
        check_batch_predictions,
        _range(SERVED),
    ),
    Stage(
        "drift report",
        "monitoring/drift_report",
        "monitoring__drift_report",
        check_drift_report,
        _range(SERVED),
        delay_s=3.0,
    ),
]


# --- the kill -------------------------------------------------------------------------------------


def wait_for_new_run(instance: dg.DagsterInstance, known: set[str], process, log: str, platform) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for run in instance.get_runs(limit=3):
            if run.run_id not in known:
                return run.run_id
        assert process.poll() is None, f"the command ended before its run existed:\n{platform.tail(log)}"
        time.sleep(0.2)
    raise AssertionError(f"no run after 120 s:\n{platform.tail(log)}")


def step_events(instance: dg.DagsterInstance, run_id: str, step: str) -> set[dg.DagsterEventType]:
    return {
        e.dagster_event.event_type
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None and e.step_key == step
    }


def materialized(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {
        e.dagster_event.asset_key.to_user_string()
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    }


def wait_until_mid_step(platform: Platform, run_id: str, stage: Stage, process, log: str) -> float:
    """Waits for the step's STEP_START (and the stage's `after` materializations, and its `writing`
    sign); returns when the step started (epoch seconds, the event's time)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        starts = platform.instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        started = [e.timestamp for e in starts if e.step_key == stage.step]
        writing = stage.writing is None or stage.writing(platform.lake)
        if started and writing and set(stage.after) <= materialized(platform.instance, run_id):
            return started[0]
        assert process.poll() is None, f"the command ended before the step started:\n{platform.tail(log)}"
        time.sleep(0.1)
    raise AssertionError(f"{stage.step} did not start within 240 s:\n{platform.tail(log)}")


def kill_mid_step(platform: Platform, stage: Stage) -> tuple[str, float, float, list]:
    """Starts the stage's command, kills it with SIGKILL during its step; returns (run id, when it was
    killed, seconds since the step started, the processes it had started)."""
    import psutil

    log = f"{stage.name.replace(' ', '-')}-killed"
    known = {r.run_id for r in platform.instance.get_runs()}
    process = platform.start(stage.selection, stage.options, stage.run_config(platform.home), log)
    run_id = wait_for_new_run(platform.instance, known, process, log, platform)
    step_started = wait_until_mid_step(platform, run_id, stage, process, log)
    time.sleep(stage.delay_s)
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    killed_at = time.time()
    process.wait()
    killed_after = killed_at - step_started
    ended = step_events(platform.instance, run_id, stage.step) & {
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    assert not ended, f"{stage.step} had ended ({ended}) before the kill: lower delay_s"
    return run_id, killed_at, killed_after, children


def wait_for_failure(instance: dg.DagsterInstance, run_id: str, killed_at: float) -> float:
    while time.time() - killed_at < MARKED_FAILED_WITHIN_S * 4:
        run = instance.get_run_by_id(run_id)
        if run.is_finished:
            assert run.status == dg.DagsterRunStatus.FAILURE, run.status
            return instance.get_run_record_by_id(run_id).end_time - killed_at
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {instance.get_run_by_id(run_id).status}")


def end_orphans(children: list, grace_s: float = 5.0) -> str:
    """The processes the killed command had started that outlived it (a dbt, a JVM, Ray): named in the
    results, then ended (they are this test's)."""
    import psutil

    _, alive = psutil.wait_procs(children, timeout=grace_s)
    names = []
    for process in alive:
        try:
            scripts = [Path(a).name for a in process.cmdline() if a.endswith((".py", ".jar"))]
            names.append(f"{process.name()} {' '.join(scripts[:1])}".strip())
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=10)
    return "; ".join(names)


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_a_killed_run_is_marked_failed_leaves_no_partial_output_and_reruns(platform: Platform, stage: Stage):
    leftovers_before = set(hidden_leftovers(platform.lake))
    run_id, killed_at, killed_after, children = kill_mid_step(platform, stage)
    failed_after = wait_for_failure(platform.instance, run_id, killed_at)
    row = RESULTS.setdefault(stage.name, {"step": stage.step})
    row.update(killed_after_s=killed_after, failed_after_s=failed_after)
    row["orphans"] = end_orphans(children)
    problems = unreadable_outputs(platform.lake)
    problems += [p for p in (warehouse_problem(platform.home), online_store_problem(platform.home)) if p]
    row["partial"] = "; ".join(problems)
    assert failed_after <= MARKED_FAILED_WITHIN_S, f"marked failed after {failed_after:.1f} s"
    messages = [e.message or "" for e in platform.instance.all_logs(run_id)]
    assert any("Detected run worker status FAILED" in m for m in messages), messages[-3:]
    assert not problems, problems

    log = f"{stage.name.replace(' ', '-')}-rerun"
    row["rerun_s"] = platform.materialize(
        stage.selection, stage.options, stage.run_config(platform.home), log
    )
    if stage.then:
        platform.materialize(stage.then, (), stage.run_config(platform.home), f"{log}-then")
    row["duplicates"] = stage.check(platform.home)
    row["hidden_leftovers"] = ", ".join(sorted(set(hidden_leftovers(platform.lake)) - leftovers_before))


@pytest.mark.slow
def test_the_queue_moves_after_the_kills(platform: Platform):
    """Every killed run is finished, so the daemon launches a newly queued run at once."""
    instance = platform.instance
    assert instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])) == 0
    assert instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])) >= len(STAGES)
    known = {r.run_id for r in instance.get_runs()}
    submitted = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "launch", "-f", str(QUEUE_PROBE), "-j", "queue_probe"],
        env=platform.env,
        cwd=platform.home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    (run,) = [r for r in instance.get_runs() if r.run_id not in known]
    while not instance.get_run_by_id(run.run_id).is_finished and time.monotonic() - submitted < 120:
        time.sleep(0.5)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS
    RESULTS["queue"] = {"step": "queue_probe", "killed_after_s": 0, "failed_after_s": 0, "partial": ""}
    RESULTS["queue"]["rerun_s"] = time.monotonic() - submitted
    RESULTS["queue"]["duplicates"] = "launched by the daemon and succeeded"


# --- `mlops replay --when-idle`: what the wait is waiting for ------------------------------------


def queued_run(instance: dg.DagsterInstance, job_name: str) -> dg.DagsterRun:
    """A run the instance sees as QUEUED, as a sensor's run waiting for a slot would be."""
    from dagster._core.remote_origin import (
        RegisteredCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )

    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("mlops_assets"), "__repository__"), job_name
    )
    run = instance.create_run_for_job(dg.GraphDefinition(job_name).to_job(), remote_job_origin=origin)
    event = dg.DagsterEvent(dg.DagsterEventType.RUN_ENQUEUED.value, job_name=job_name)
    instance.report_dagster_event(event, run_id=run.run_id)
    return instance.get_run_by_id(run.run_id)


def test_the_idle_wait_names_the_runs_it_waits_for_at_a_bounded_rate(tmp_path, monkeypatch):
    import threading

    from mlops_assets.cli import wait_until_idle
    from tests.conftest import started_run

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()  # no dagster.yaml: Dagster's defaults, run monitoring off
    lines: list[str] = []
    with dg.DagsterInstance.get() as instance:
        running = started_run(instance, "features_job")
        queued = queued_run(instance, "drift_job")

        def finish_later() -> None:
            time.sleep(2.0)
            for run in (running, queued):
                instance.report_run_canceled(instance.get_run_by_id(run.run_id))

        threading.Thread(target=finish_later).start()
        wait_until_idle(quiet_s=0.3, poll_s=0.05, report_s=0.8, write=lines.append)
    assert "run monitoring is off" in lines[0] and "does not end" in lines[0]
    reports = [line for line in lines if " waiting for " in line]
    # About 40 polls saw the runs in 2 s; one report per 0.8 s at most.
    assert 2 <= len(reports) <= 3, lines
    assert "waiting for 2 run(s) to finish (1 queued, 1 started), then 0.3 s without runs" in reports[0]
    listed = " ".join(lines)
    assert f"{running.run_id[:8]}  STARTED  for" in listed and "features_job" in listed
    assert f"{queued.run_id[:8]}  QUEUED   for" in listed and "drift_job" in listed


def test_the_idle_wait_says_nothing_about_monitoring_when_it_is_on(tmp_path, monkeypatch):
    import shutil

    from mlops_assets.cli import wait_until_idle

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    shutil.copy(REPO / "deploy" / "local" / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    lines: list[str] = []
    wait_until_idle(quiet_s=0.1, poll_s=0.05, write=lines.append)
    assert lines == []


# --- the health check itself, on real processes ---------------------------------------------------


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_the_health_check_tells_a_live_worker_from_a_dead_a_zombie_and_a_reused_pid():
    import psutil

    from mlops_assets.lib.run_launcher import Worker, WorkerStatus, worker_health

    live = _sleeper()
    try:
        created = psutil.Process(live.pid).create_time()
        assert worker_health(Worker(live.pid, started_at=created + 0.5)).status == WorkerStatus.RUNNING
        # the same pid, but its process started a minute after the run: the run's own process is gone
        reused = worker_health(Worker(live.pid, started_at=created - 60))
        assert reused.status == WorkerStatus.FAILED and "now belongs to a process started 60 s" in reused.msg
        live.kill()  # not reaped yet: a zombie
        time.sleep(0.5)
        zombie = worker_health(Worker(live.pid, started_at=created))
        assert zombie.status == WorkerStatus.FAILED and "has exited" in zombie.msg
    finally:
        live.kill()
        live.wait()
    gone = worker_health(Worker(live.pid, started_at=created))
    assert gone.status == WorkerStatus.FAILED and f"(pid {live.pid}) is gone" in gone.msg


def test_the_launcher_judges_only_workers_it_knows_are_on_this_machine(tmp_path, monkeypatch):
    import shutil

    from dagster._core.storage.tags import GRPC_INFO_TAG

    from mlops_assets.lib.run_launcher import MonitoredRunLauncher, WorkerStatus
    from tests.conftest import started_run

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    shutil.copy(REPO / "deploy" / "local" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_launcher, MonitoredRunLauncher)
        assert instance.run_monitoring_enabled and instance.run_launcher.supports_check_run_worker_health
        run = started_run(instance, "g")  # its RUN_START carries this process's pid, which is alive
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING

        dead = _sleeper()
        dead.kill()
        dead.wait()
        event = dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name="g", pid=dead.pid)
        instance.report_dagster_event(event, run_id=run.run_id)  # a later RUN_START: a resumed worker
        local = instance.run_launcher.check_run_worker_health(run)
        assert local.status == WorkerStatus.FAILED and "is gone" in local.msg

        # Another machine's pid says nothing here: such runs are left to their own code server.
        remote_tags = {GRPC_INFO_TAG: json.dumps({"host": "worker-7.internal", "port": 4000})}
        remote = instance.run_launcher.check_run_worker_health(run.with_tags({**run.tags, **remote_tags}))
        assert remote.status == WorkerStatus.RUNNING and "worker-7.internal" in remote.msg
        local_tags = {GRPC_INFO_TAG: json.dumps({"host": "localhost", "port": 4000})}
        launched_here = run.with_tags({**run.tags, **local_tags})
        assert instance.run_launcher.check_run_worker_health(launched_here).status == WorkerStatus.FAILED
        unknown = MonitoredRunLauncher(workers_on_this_host=False)
        unknown.register_instance(instance)
        assert unknown.check_run_worker_health(run).status == WorkerStatus.RUNNING
        assert unknown.check_run_worker_health(launched_here).status == WorkerStatus.FAILED
