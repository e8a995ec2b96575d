"""The repository's Prometheus config, alert rules and Grafana dashboards against a real Prometheus.

1. promtool accepts deploy/prometheus/prometheus.yml and alerts.yml; the dashboards read the provisioned
   datasource.
2. A real Prometheus (its own process, a temporary data folder, free ports) runs the repository's config,
   adapted only in its ports, intervals (1-2 s) and alert `for:` durations (0 s), and scrapes the real
   prediction service (uvicorn, the `champion_home` champion) and the real exporter (`mlops metrics`,
   over a Dagster instance in which real runs materialized a day's predictions, drift report and
   performance record, and one run failed). Every dashboard query and every alert's recorded signal
   returns data through Prometheus's HTTP API, every alert expression evaluates, and two faults make
   their alerts fire: a burst of 422s (ServingClientErrorRate) and a failed run (DagsterRunsFailed).

Without the prometheus binary (Debian: `apt-get install prometheus`) these tests skip, saying so; with
MLOPS_REQUIRE_SERVICES=1 (CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.services import REQUIRE_ENV

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DAY = "2013-01-20"  # a day of the champion's window with online features (tests/test_serving.py)
UNPREDICTED_DAY = "2013-01-05"  # no batch predictions: its drift report fails, as a real run would


def binary(name: str) -> str:
    """The path of `name`, or skip (fail under MLOPS_REQUIRE_SERVICES=1) saying how to get it."""
    path = shutil.which(name)
    if path:
        return path
    problem = f"this test needs the `{name}` binary, not on PATH (Debian: apt-get install prometheus)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{problem}; {REQUIRE_ENV}=1 does not allow a skip", pytrace=False)
    pytest.skip(problem)


def dashboard_queries() -> list[tuple[str, str]]:
    """(dashboard / panel / refId, PromQL) of every panel target."""
    queries = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                queries.append((f"{board['uid']} / {panel['title']} / {target['refId']}", target["expr"]))
    return queries


def rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


# ---- 1. the files --------------------------------------------------------------------------------------


def test_promtool_accepts_the_config_and_the_rules():
    promtool = binary("promtool")
    for command in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        checked = subprocess.run([promtool, *command], cwd=PROMETHEUS_DIR, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "SUCCESS" in checked.stdout


def test_the_alerts_fire_on_their_thresholds_and_not_before():
    """promtool's rule unit tests (deploy/prometheus/alerts_test.yml): drift, quality, the daemon, a stale
    asset and the 4xx rate, each on series just under and over its threshold."""
    checked = subprocess.run(
        [binary("promtool"), "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr


def test_every_alert_watches_a_recorded_signal_or_up():
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    alerts = [rule for rule in rules() if "alert" in rule]
    assert len(alerts) >= 8
    for alert in alerts:
        signals = set(re.findall(r"mlops:[a-z0-9_:]+", alert["expr"]))
        assert signals <= recorded, alert["alert"]
        assert signals or "up{" in alert["expr"], alert["alert"]
        assert alert["annotations"]["summary"] and alert["labels"]["severity"]


def test_the_dashboards_read_the_provisioned_datasource():
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    assert [p.stem for p in DASHBOARDS] == ["platform", "serving"]
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["panels"] and len({p["id"] for p in board["panels"]}) == len(board["panels"])
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid and panel["targets"], panel["title"]
            assert all(t["datasource"]["uid"] == uid and t["expr"] for t in panel["targets"])


# ---- 2. a real Prometheus ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)


@pytest.fixture(scope="module")
def platform_home(champion_home, tmp_path_factory) -> Path:
    """An MLOPS_HOME over champion_home's registry, Feast store and warehouse (linked, read here) with its
    own lake (a copy) and Dagster instance, in which real runs materialized DAY's batch predictions,
    drift report and performance record, and one run (a drift report of a day without predictions)
    failed."""
    import dagster as dg

    from mlops_assets.definitions import build_definitions
    from mlops_assets.lib.keys import BATCH_PREDICTIONS, DRIFT_REPORT, MODEL_PERFORMANCE
    from tests.test_loop import run, with_test_resources

    home = tmp_path_factory.mktemp("platform_home")
    shutil.copytree(champion_home / "lake", home / "lake")
    for name in ("mlflow", "feast", "warehouse.duckdb"):
        (home / name).symlink_to(champion_home / name)
    (home / "dagster_home").mkdir()
    (home / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.setenv("DBT_TARGET_PATH", str(home / "dbt-target"))
        patch.delenv("MLOPS_PROFILE", raising=False)
        build_definitions.cache_clear()
        defs = with_test_resources(build_definitions("local"), home)
        with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
            run(defs, instance, [BATCH_PREDICTIONS, DRIFT_REPORT, MODEL_PERFORMANCE], partition_key=DAY)
            assert not failed_drift_report(defs, instance).success
        build_definitions.cache_clear()
    return home


def failed_drift_report(defs, instance):
    """A real run that fails: the drift report of a day that has no batch predictions."""
    from mlops_assets.lib.keys import DRIFT_REPORT

    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance, asset_selection=[DRIFT_REPORT], partition_key=UNPREDICTED_DAY, raise_on_error=False
    )


@contextlib.contextmanager
def exporter(home: Path, port: int) -> Iterator[str]:
    """`mlops metrics` in its own process over `home`; yields its URL once it answers."""
    import httpx

    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("MLOPS_PROFILE", None)
    log = (home / "exporter.log").open("w")
    command = [sys.executable, "-m", "mlops_assets.cli", "metrics", "--port", str(port), "--max-age", "2"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, (home / "exporter.log").read_text()[-3000:]
        try:
            return httpx.get(f"{url}/metrics", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, 240, "mlops metrics to answer", poll=1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def adapted_config(tmp: Path, serving: str, platform: str) -> Path:
    """The repository's prometheus.yml and alerts.yml with the test's targets, 1-2 s intervals and the
    alerts' `for:` at 0 s (an alert fires on the first evaluation that finds its fault)."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    targets = {"mlops_serving": serving, "mlops_platform": platform}
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
        job["scrape_interval"] = job["scrape_timeout"] = "1s" if job["job_name"] == "mlops_serving" else "2s"
    alerts = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = "0s"
    (tmp / "alerts.yml").write_text(yaml.safe_dump(alerts))
    config["rule_files"] = [str(tmp / "alerts.yml")]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    return tmp / "prometheus.yml"


@contextlib.contextmanager
def prometheus(config: Path, data: Path, port: int) -> Iterator[str]:
    import httpx

    log = (data.parent / "prometheus.log").open("w")
    command = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (data.parent / "prometheus.log").read_text()[-3000:]
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 60, "prometheus to be ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


class Traffic:
    """Good one-flight requests in a thread, a few per second, so rates over the last minute have data."""

    def __init__(self, url: str, bodies: list[dict], per_second: float = 10) -> None:
        self.url, self.bodies, self.pause = url, bodies, 1 / per_second
        self.answers: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=30) as http:
            n = 0
            while not self._stop.wait(self.pause):
                n += 1
                if n % 20 == 0:
                    status = http.post("/predict/batch", json={"flights": self.bodies[:5]}).status_code
                else:
                    status = http.post("/predict", json=self.bodies[n % len(self.bodies)]).status_code
                self.answers[status] = self.answers.get(status, 0) + 1


def query(http, expr: str) -> list[dict]:
    response = http.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


def firing(http) -> set[str]:
    alerts = http.get("/api/v1/alerts").json()["data"]["alerts"]
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


@pytest.mark.slow
def test_prometheus_scrapes_both_targets_and_every_panel_and_alert_has_data(
    champion_home, platform_home, tmp_path
):
    import httpx

    from tests.test_serving import make_app, request_body, scheduled_flights, served

    binary("prometheus")
    bodies = [request_body(f) for f in scheduled_flights(champion_home, DAY).itertuples()]
    exporter_port, prometheus_port = free_port(), free_port()
    with (
        served(make_app(champion_home)) as service_url,
        exporter(platform_home, exporter_port) as exporter_url,
        Traffic(service_url, bodies) as traffic,
    ):
        config = adapted_config(tmp_path, service_url.split("//")[1], exporter_url.split("//")[1])
        data = tmp_path / "data"
        with prometheus(config, data, prometheus_port) as url, httpx.Client(base_url=url) as http:
            # Enough samples of both targets for rates over a minute and for the rules to have run.
            for job in ("mlops_serving", "mlops_platform"):
                scraped = f'sum_over_time(up{{job="{job}"}}[1m]) >= 4'
                wait_for(lambda scraped=scraped: query(http, scraped), 120, f"{job} scraped")
            wait_for(lambda: query(http, "mlops:serving_p99_seconds:rate5m"), 30, "the recording rules")
            targets = http.get("/api/v1/targets").json()["data"]["activeTargets"]
            assert {t["labels"]["job"]: t["health"] for t in targets} == {
                "mlops_serving": "up",
                "mlops_platform": "up",
            }, [t["lastError"] for t in targets]

            empty = [name for name, expr in dashboard_queries() if not query(http, expr)]
            assert not empty, f"dashboard queries without data: {empty}"
            for rule in rules():
                if "record" in rule:
                    assert query(http, rule["record"]), f"the recorded signal {rule['record']} has no data"
                else:
                    query(http, rule["expr"])  # evaluates (its result is whether it fires)
            assert traffic.answers.get(200, 0) > 20 and set(traffic.answers) == {200}

            # What the exporter read is what the runs did.
            def one(expr: str) -> float:
                result = query(http, expr)
                assert len(result) == 1, (expr, result)
                return float(result[0]["value"][1])

            assert one('mlops_dagster_runs{status="FAILURE"}') == 1
            assert one("mlops_model_champion_version") == 1 and one("mlops_serving_champion_version") == 1
            assert 0 <= one("mlops_monitoring_drift_share") <= 1 and 0 < one("mlops_monitoring_roc_auc") <= 1
            day = one('mlops_asset_latest_partition_timestamp_seconds{asset="monitoring/drift_report"}')
            assert time.strftime("%Y-%m-%d", time.gmtime(day)) == DAY

            # Fault 1: a client sends flights to an airport that does not exist, 300 times.
            assert "ServingClientErrorRate" not in firing(http)
            with httpx.Client(base_url=service_url, timeout=30) as client:
                for n in range(300):
                    body = {**bodies[n % len(bodies)], "dest": "ZZZ"}
                    assert client.post("/predict", json=body).status_code == 422
            wait_for(lambda: "ServingClientErrorRate" in firing(http), 60, "ServingClientErrorRate to fire")
            kinds = query(http, 'mlops_serving_errors_total{status="422"}')
            assert {r["metric"]["kind"] for r in kinds} == {"unknown_airport"}

            # Fault 2: a run fails while Prometheus watches.
            assert "DagsterRunsFailed" not in firing(http)
            fail_a_run(platform_home)
            wait_for(lambda: "DagsterRunsFailed" in firing(http), 90, "DagsterRunsFailed to fire")
            assert one('mlops_dagster_runs{status="FAILURE"}') == 2


def fail_a_run(home: Path) -> None:
    import dagster as dg

    from mlops_assets.definitions import build_definitions
    from tests.test_loop import with_test_resources

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.delenv("MLOPS_PROFILE", raising=False)
        build_definitions.cache_clear()
        defs = with_test_resources(build_definitions("local"), home)
        with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
            assert not failed_drift_report(defs, instance).success
        build_definitions.cache_clear()
