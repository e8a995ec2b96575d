"""The deployment files, linted and checked without a container engine or a cluster.

deploy/docker/Dockerfile (hadolint), every YAML under deploy/ (yamllint with the repository's .yamllint),
deploy/compose/docker-compose.yaml (structure: images, healthchecks, depends_on, no inline secrets) and
deploy/helm/values.yaml (Dagster's chart: run launcher, queue, pools, run monitoring, external PostgreSQL,
secrets by reference; against the chart's values.schema.json when DAGSTER_HELM_CHART names an unpacked
chart, e.g. from `helm pull dagster/dagster --version 1.13.27 --untar`). And every setting the code
reads is set in both deployments: adding a setting without them fails here. Nothing here builds an
image, starts a container or installs a chart.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "compose" / "docker-compose.yaml"
HELM_VALUES = DEPLOY / "helm" / "values.yaml"
HELM_CONFIGMAP = DEPLOY / "helm" / "mlops-env.configmap.yaml"
PRODUCTION_INSTANCE = DEPLOY / "production" / "dagster.yaml"
PRODUCTION_DOC = ROOT / "docs" / "production.md"

CODE_SERVER_COMMAND = [
    "dagster", "code-server", "start", "-m", "mlops_assets.definitions", "-a", "defs", "-h", "0.0.0.0",
    "-p", "4000",
]  # fmt: skip
# The services that load the definitions or the instance, and so need the whole production environment.
DAGSTER_SERVICES = ("code", "daemon", "webserver")
SETTING_NAME = re.compile(r"\b(?:MLOPS|DAGSTER_PG|DBT_PG)_[A-Z0-9_]+\b")
# Settings the code reads that a deployment does not set, each with the reason. Each must still be read
# somewhere (test_exemptions_are_still_read), so the list cannot outlive the code.
NOT_DEPLOYED = {
    "MLOPS_SPARK_MASTER": "the alternative to MLOPS_SPARK_REMOTE (a JVM driver in the step), which both set",
    "MLOPS_FEATURE_SOURCE_ROOT": "overrides the lake for the `feast` CLI run by hand (feature_repo/repo.py)",
    "MLOPS_SERVE_WORKER_CONFIG": "set by `mlops serve` itself for its worker processes",
    "MLOPS_SPARK_STAGING_DIR": "for a Spark cluster without an S3 connector; the deployed one has hadoop-aws",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|_KEY$")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def tool(name: str) -> str:
    """A linter installed with the dev extra, next to this interpreter or on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]' installs it)")
    return found


# ---------------------------------------------------------------------------------------------------
# The settings the code reads
# ---------------------------------------------------------------------------------------------------


def settings_read_by_code() -> set[str]:
    """Every MLOPS_*/DAGSTER_PG_*/DBT_PG_* name in the package, dbt and the Feast repository, and every
    variable of docs/production.md's settings table (which adds MLFLOW_TRACKING_URI and AWS_*)."""
    names: set[str] = set()
    sources = [*(ROOT / "mlops_assets").rglob("*.py"), *(ROOT / "feature_repo").rglob("*.py")]
    # The dbt project's own files, not dbt's build output (dbt/target holds folders named like files).
    dbt_files = [*(ROOT / "dbt").rglob("*.yml"), *(ROOT / "dbt").rglob("*.sql")]
    target = ROOT / "dbt" / "target"
    sources += [f for f in dbt_files if f.is_file() and target not in f.parents] + [PRODUCTION_INSTANCE]
    for path in sources:
        names |= set(SETTING_NAME.findall(path.read_text()))
    return names | documented_settings()


def documented_settings() -> set[str]:
    section = PRODUCTION_DOC.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def required_settings() -> set[str]:
    return settings_read_by_code() - set(NOT_DEPLOYED)


def test_the_settings_are_found() -> None:
    names = settings_read_by_code()
    # The scan itself works: settings of each family, from the code, dbt and the docs table.
    assert {"MLOPS_PROFILE", "MLOPS_S3_BUCKET", "MLOPS_SPARK_REMOTE", "MLOPS_RAY_ADDRESS"} <= names
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD", "DBT_PG_HOST", "DBT_PG_PASSWORD"} <= names
    assert {"MLFLOW_TRACKING_URI", "AWS_REGION", "AWS_ACCESS_KEY_ID"} <= documented_settings()


def test_exemptions_are_still_read() -> None:
    assert set(NOT_DEPLOYED) <= settings_read_by_code()


# ---------------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------------


def hadolint(path: Path) -> list[dict[str, Any]]:
    """hadolint's findings at every level (style included), with no configuration file of the user's."""
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(path.parent)},
        cwd=path.parent,  # hadolint also reads a .hadolint.yaml of the working directory: none there
    )
    return json.loads(result.stdout or "[]")


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    assert hadolint(DOCKERFILE) == []


def test_hadolint_does_find_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nUSER root\n")
    codes = {finding["code"] for finding in hadolint(bad)}
    assert {"DL3007", "DL3008", "DL3002"} <= codes


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]  # type: ignore[misc]


def test_dockerfile_builds_the_code_location_image() -> None:
    instructions = dockerfile_instructions()
    values = {}
    for keyword, argument in instructions:
        values.setdefault(keyword, []).append(argument)
    assert values["FROM"] == ["python:3.11-slim"]
    # The same torch pin as the Makefile's setup target, and the project installed as `make setup` does.
    makefile_pin = re.search(r'"torch==([0-9.]+)"', (ROOT / "Makefile").read_text()).group(1)
    assert f"TORCH_VERSION={makefile_pin}" in values["ARG"]
    runs = " ".join(values["RUN"])
    assert '"torch==${TORCH_VERSION}" -e .' in runs
    # The dbt manifest is parsed while building, so the code server never runs dbt at start.
    assert "python -m mlops_assets.transform.dbt_project" in runs
    assert "test -f dbt/target/manifest.json" in runs
    # It runs as a user other than root, named by number (Kubernetes' runAsNonRoot checks the number).
    (user,) = values["USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    # The default command is the code server the Helm values and the compose file expect.
    (cmd,) = values["CMD"]
    assert json.loads(cmd) == CODE_SERVER_COMMAND
    assert "ENTRYPOINT" not in values  # the chart and `mlops serve` replace the command, not an entrypoint
    # DAGSTER_HOME and MLOPS_HOME of the image are the ones the chart and the compose file use.
    env = dict(re.findall(r"([A-Z_]+)=(\S+)", " ".join(values["ENV"])))
    assert env["DAGSTER_HOME"] == load_yaml(HELM_VALUES)["global"]["dagsterHome"]
    code_env = environment_of(load_yaml(COMPOSE)["services"]["code"])
    assert (code_env["DAGSTER_HOME"], code_env["MLOPS_HOME"]) == (env["DAGSTER_HOME"], env["MLOPS_HOME"])
    helm_env = {item["name"]: item.get("value") for item in user_deployment(load_yaml(HELM_VALUES))["env"]}
    assert helm_env["MLOPS_HOME"] == env["MLOPS_HOME"]


def test_dockerignore_keeps_local_state_out_and_the_sources_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        """Docker's rule for these patterns: relative to the context's root, one `*` within one folder
        name, a folder's pattern covering what is inside it, `**/` for any number of folders."""
        parts = path.split("/")
        for pattern in patterns:
            if pattern.startswith("**/"):
                tail = pattern.removeprefix("**/")
                depth = tail.count("/") + 1
                windows = ["/".join(parts[i : i + depth]) for i in range(len(parts) - depth + 1)]
                if any(fnmatch.fnmatchcase(window, tail) for window in windows):
                    return True
            else:
                depth = pattern.count("/") + 1
                if len(parts) >= depth and fnmatch.fnmatchcase("/".join(parts[:depth]), pattern):
                    return True
        return False

    for local in (".venv", "data", "dbt/target", "dbt/target/manifest.json", ".git", "dbt/logs", ".env"):
        assert ignored(local), local
    # The compose stack's secrets file (docker-compose.yaml reads deploy/compose/.env) stays out of images.
    assert ignored("deploy/compose/.env")
    # What the Dockerfile copies and uses while building.
    needed = ["pyproject.toml", "README.md", "mlops_assets/definitions.py", "dbt/dbt_project.yml"]
    needed += ["dbt/profiles.yml", "feature_repo/repo.py", "deploy/production/dagster.yaml"]
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not ignored(path), path


# ---------------------------------------------------------------------------------------------------
# yamllint
# ---------------------------------------------------------------------------------------------------


def yamllint_problems(path: Path, text: str | None = None) -> list[str]:
    tool("yamllint")
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(ROOT / ".yamllint"))
    source = path.read_text() if text is None else text
    return [f"{path.name}:{p.line}:{p.column} {p.rule} {p.message}" for p in linter.run(source, config)]


def deploy_yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def test_every_deploy_yaml_is_linted() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in deploy_yaml_files()}
    assert {"compose/docker-compose.yaml", "helm/values.yaml", "production/dagster.yaml"} <= names


@pytest.mark.parametrize("path", deploy_yaml_files(), ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yamllint_finds_nothing(path: Path) -> None:
    assert yamllint_problems(path) == []


def test_yamllint_does_find_problems() -> None:
    problems = yamllint_problems(COMPOSE, "services:\n  a: 1\n  a: 2\nx:   yes\n")
    assert any("key-duplicates" in p for p in problems)
    assert any("truthy" in p for p in problems)


# ---------------------------------------------------------------------------------------------------
# docker-compose.yaml
# ---------------------------------------------------------------------------------------------------

# A value that is only a reference to the environment or the .env file: ${VAR}, ${VAR:?message}, ...
ENV_REFERENCE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(?:(?::?[-?+])[^}]*)?\}$")
# user:password@ in a URL; the password part must be a reference ($VAR, ${VAR}, $${VAR} for the container).
URL_CREDENTIALS = re.compile(r"://[^/\s:@\"']+:([^@\s\"']+)@")


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def all_strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in all_strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in all_strings(v)]
    return [node] if isinstance(node, str) else []


def compose_problems(compose: dict[str, Any]) -> list[str]:
    """What is wrong with a compose file's structure; empty when nothing is."""
    problems: list[str] = []
    services: dict[str, Any] = compose.get("services") or {}
    if not services:
        return ["no services"]
    completed_only: dict[str, bool] = {}
    for name, service in services.items():
        if not (service.get("image") or service.get("build")):
            problems.append(f"{name}: neither image nor build")
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on without conditions")
            depends = {dep: {} for dep in depends}
        for dep, spec in depends.items():
            condition = (spec or {}).get("condition")
            if dep not in services:
                problems.append(f"{name}: depends on {dep}, which is not a service")
                continue
            if condition not in ("service_healthy", "service_completed_successfully", "service_started"):
                problems.append(f"{name}: depends on {dep} without a condition")
            if condition == "service_healthy" and not services[dep].get("healthcheck"):
                problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            completed_only[dep] = (
                completed_only.get(dep, True) and condition == "service_completed_successfully"
            )
        for key, value in environment_of(service).items():
            if SECRET_NAME.search(key) and not ENV_REFERENCE.match(value):
                problems.append(f"{name}: {key} is written inline, not a ${{VAR}} reference")
        for text in all_strings(service):
            for password in URL_CREDENTIALS.findall(text):
                if not password.startswith("$"):
                    problems.append(f"{name}: a password inline in {text!r}")
    for name, service in services.items():
        healthcheck = service.get("healthcheck")
        # A one-shot job (waited for with service_completed_successfully only) has nothing to check.
        if not healthcheck and not completed_only.get(name, False):
            problems.append(f"{name}: no healthcheck")
        if healthcheck and not (healthcheck.get("test") and healthcheck.get("test") != ["NONE"]):
            problems.append(f"{name}: an empty healthcheck")
    return problems


def test_compose_structure() -> None:
    compose = load_yaml(COMPOSE)
    assert compose_problems(compose) == []
    services = compose["services"]
    # The production profile's services, and the Dagster ones from the Dockerfile's image.
    for name in ("postgres", "redis", "minio", "mlflow", "spark-master", "spark-worker", "spark-connect"):
        assert name in services, name
    for name in ("ray-head", "rabbitmq", *DAGSTER_SERVICES):
        assert name in services, name
    assert services["code"]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert (COMPOSE.parent / services["code"]["build"]["context"] / "deploy/docker/Dockerfile").is_file()
    image = services["code"]["image"]
    assert services["webserver"]["image"] == services["daemon"]["image"] == image
    assert "command" not in services["code"]  # the image's own command: the code server on 4000
    workspace = load_yaml(COMPOSE.parent / "workspace.yaml")
    (server,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    assert (server["host"], server["port"]) == ("code", int(CODE_SERVER_COMMAND[-1]))
    for name in ("webserver", "daemon"):
        assert "/opt/mlops/deploy/compose/workspace.yaml" in services[name]["command"]
        assert services[name]["depends_on"]["code"]["condition"] == "service_healthy"


def test_compose_checks_do_find_problems() -> None:
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    services["redis"].pop("healthcheck")
    services["code"]["depends_on"]["nosuch"] = {"condition": "service_healthy"}
    services["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter2"
    services["mlflow"]["command"] = ["mlflow server --backend-store-uri postgresql://u:hunter2@postgres/x"]
    services["minio"].pop("image")
    problems = compose_problems(compose)
    assert any(p.startswith("redis: no healthcheck") for p in problems)
    assert any("waits for redis to be healthy" in p for p in problems)
    assert any("depends on nosuch" in p for p in problems)
    assert any("POSTGRES_PASSWORD is written inline" in p for p in problems)
    assert any(p.startswith("mlflow: a password inline") for p in problems)
    assert any(p.startswith("minio: neither image nor build") for p in problems)


def test_compose_passwords_come_from_the_environment() -> None:
    # Compose's own references (${VAR}), not the container-side ones ($${VAR}), and not in comments.
    text = "\n".join(all_strings(load_yaml(COMPOSE)))
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    example = COMPOSE.parent / "example.env"
    listed = {line.split("=", 1)[0] for line in example.read_text().splitlines() if "=" in line}
    assert {
        "POSTGRES_PASSWORD",
        "DAGSTER_PG_PASSWORD",
        "DBT_PG_PASSWORD",
        "MINIO_ROOT_PASSWORD",
    } <= referenced
    # Every variable the compose file needs is in the example .env, and the example carries no value.
    assert referenced <= listed
    assert all(line.endswith("=") for line in example.read_text().splitlines() if "=" in line)
    # The init script creates the roles with the passwords of the container's environment.
    init = (COMPOSE.parent / "postgres-init.sh").read_text()
    postgres_env = environment_of(load_yaml(COMPOSE)["services"]["postgres"])
    for variable in re.findall(r'="\$([A-Z_]+)"', init):
        assert variable in postgres_env, variable


def compose_missing_settings(compose: dict[str, Any], required: set[str]) -> dict[str, set[str]]:
    return {
        name: missing
        for name in DAGSTER_SERVICES
        if (missing := required - set(environment_of(compose["services"][name])))
    }


def test_compose_sets_every_setting_for_the_dagster_services() -> None:
    compose = load_yaml(COMPOSE)
    assert compose_missing_settings(compose, required_settings()) == {}
    env = environment_of(compose["services"]["code"])
    assert env["MLOPS_PROFILE"] == "production"
    assert env["MLOPS_SPARK_REMOTE"] == "sc://spark-connect:15002"
    assert env["MLOPS_RAY_ADDRESS"] == "ray://ray-head:10001"  # Ray Client: the container is no Ray node
    ray_head = " ".join(compose["services"]["ray-head"]["command"])
    assert "--head" in ray_head and "--ray-client-server-port 10001" in ray_head


def test_compose_setting_check_does_find_a_missing_setting() -> None:
    compose = load_yaml(COMPOSE)
    assert compose_missing_settings(compose, required_settings() | {"MLOPS_NEW_SETTING"}) == {
        name: {"MLOPS_NEW_SETTING"} for name in DAGSTER_SERVICES
    }


# ---------------------------------------------------------------------------------------------------
# Helm values for dagster/dagster
# ---------------------------------------------------------------------------------------------------


def user_deployment(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


# The chart renders the instance's PostgreSQL from its own keys, not from DAGSTER_PG_* variables.
CHART_POSTGRES_KEYS = {
    "DAGSTER_PG_HOST": ("postgresqlHost",),
    "DAGSTER_PG_USER": ("postgresqlUsername",),
    "DAGSTER_PG_DB": ("postgresqlDatabase",),
    "DAGSTER_PG_PORT": ("service", "port"),
}


def helm_missing_settings(values: dict[str, Any], required: set[str]) -> dict[str, set[str]]:
    """Per pod kind (code, runs through includeConfigInLaunchedRuns, daemon, webserver), what is not set."""
    postgres = values["postgresql"]
    chart_set = set()
    for name, keys in CHART_POSTGRES_KEYS.items():
        node: Any = postgres
        for key in keys:
            node = (node or {}).get(key)
        if node not in (None, ""):
            chart_set.add(name)
    if (
        values["global"].get("postgresqlSecretName")
        and values.get("generatePostgresqlPasswordSecret") is False
    ):
        chart_set.add("DAGSTER_PG_PASSWORD")
    pods = {
        "code": user_deployment(values).get("env") or [],
        "daemon": values["dagsterDaemon"].get("env") or [],
        "webserver": values["dagsterWebserver"].get("env") or [],
    }
    missing = {}
    for pod, env in pods.items():
        absent = required - chart_set - {item["name"] for item in env}
        if absent:
            missing[pod] = absent
    return missing


def test_helm_values_set_every_setting() -> None:
    values = load_yaml(HELM_VALUES)
    assert helm_missing_settings(values, required_settings()) == {}
    # Runs get the code location's environment.
    assert user_deployment(values)["includeConfigInLaunchedRuns"]["enabled"] is True


def test_helm_setting_check_does_find_a_missing_setting() -> None:
    values = load_yaml(HELM_VALUES)
    values["postgresql"]["postgresqlHost"] = ""
    missing = helm_missing_settings(values, required_settings() | {"DBT_PG_NEW"})
    assert missing == {pod: {"DBT_PG_NEW", "DAGSTER_PG_HOST"} for pod in ("code", "daemon", "webserver")}


def helm_secret_problems(values: dict[str, Any]) -> list[str]:
    problems = []
    if values["postgresql"].get("postgresqlPassword"):
        problems.append("postgresql.postgresqlPassword is inline")
    if values.get("generatePostgresqlPasswordSecret") is not False:
        problems.append("the chart would make the PostgreSQL secret from values")
    envs = [user_deployment(values).get("env") or [], values["dagsterDaemon"].get("env") or []]
    envs.append(values["dagsterWebserver"].get("env") or [])
    for env in envs:
        for item in env:
            if ("value" in item) == ("valueFrom" in item):
                problems.append(f"{item['name']}: needs exactly one of value and valueFrom")
            if SECRET_NAME.search(item["name"]) and "secretKeyRef" not in (item.get("valueFrom") or {}):
                problems.append(f"{item['name']}: a secret not read from a Secret")
    return problems


def test_helm_values_write_no_secret() -> None:
    values = load_yaml(HELM_VALUES)
    assert helm_secret_problems(values) == []
    bad = load_yaml(HELM_VALUES)
    bad["postgresql"]["postgresqlPassword"] = "hunter2"
    user_deployment(bad)["env"].append({"name": "DBT_PG_PASSWORD", "value": "hunter2"})
    assert set(helm_secret_problems(bad)) == {
        "postgresql.postgresqlPassword is inline",
        "DBT_PG_PASSWORD: a secret not read from a Secret",
    }


def test_helm_config_map_has_every_key_the_values_read() -> None:
    values = load_yaml(HELM_VALUES)
    config_map = load_yaml(HELM_CONFIGMAP)
    assert config_map["kind"] == "ConfigMap"
    refs = [
        item["valueFrom"]["configMapKeyRef"]
        for item in user_deployment(values)["env"]
        if "configMapKeyRef" in (item.get("valueFrom") or {})
    ]
    assert refs
    for ref in refs:
        assert ref["name"] == config_map["metadata"]["name"]
        assert ref["key"] in config_map["data"], ref["key"]
        assert isinstance(config_map["data"][ref["key"]], str)  # ConfigMap data are strings


def test_helm_values_match_the_production_instance() -> None:
    values = load_yaml(HELM_VALUES)
    instance = load_yaml(PRODUCTION_INSTANCE)
    deployment = user_deployment(values)
    # The image's code server: the chart runs `dagster code-server start -h 0.0.0.0 -p PORT ARGS`.
    assert deployment["codeServerArgs"] == CODE_SERVER_COMMAND[3:7]
    assert deployment["port"] == int(CODE_SERVER_COMMAND[-1])
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    # The external PostgreSQL, through the secret the chart reads (key postgresql-password).
    assert values["postgresql"]["enabled"] is False
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == instance["run_coordinator"]["class"]
    queued = coordinator["config"]["queuedRunCoordinator"]
    assert (
        queued["dequeueIntervalSeconds"] == instance["run_coordinator"]["config"]["dequeue_interval_seconds"]
    )
    # Run and pool limits in the chart's `concurrency` block (not also in the coordinator: the chart
    # refuses both), equal to the production instance's.
    assert "maxConcurrentRuns" not in queued and "tagConcurrencyLimits" not in queued
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    assert concurrency["runs"]["maxConcurrentRuns"] == instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert concurrency["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    assert concurrency["pools"]["granularity"] == instance["concurrency"]["pools"]["granularity"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    expected = instance["run_monitoring"]
    assert monitoring["enabled"] is expected["enabled"] is True
    assert monitoring["pollIntervalSeconds"] == expected["poll_interval_seconds"]
    assert monitoring["maxResumeRunAttempts"] == expected["max_resume_run_attempts"]
    assert monitoring["freeSlotsAfterRunEndSeconds"] == expected["free_slots_after_run_end_seconds"]
    assert values["telemetry"]["enabled"] is instance["telemetry"]["enabled"] is False


# ---------------------------------------------------------------------------------------------------
# Against the chart's own schema (needs the chart: DAGSTER_HELM_CHART=<unpacked dagster chart>)
# ---------------------------------------------------------------------------------------------------


def chart_dir() -> Path:
    configured = os.environ.get("DAGSTER_HELM_CHART")
    if not configured:
        pytest.skip(
            "DAGSTER_HELM_CHART is not set: point it at Dagster's chart, e.g. the folder of "
            "`helm pull dagster/dagster --version 1.13.27 --untar` (values.yaml, values.schema.json)"
        )
    path = Path(configured)
    assert (path / "values.schema.json").is_file() and (path / "values.yaml").is_file(), path
    return path


def helm_merge(defaults: Any, overrides: Any) -> Any:
    """Helm's coalescing of a chart's values with a values file: maps merge, a null deletes, the rest
    (lists included) replaces."""
    if not (isinstance(defaults, dict) and isinstance(overrides, dict)):
        return overrides
    merged = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = helm_merge(defaults.get(key), value) if key in defaults else value
    return merged


def offline_schema(node: Any) -> Any:
    """The schema without its references to Kubernetes' own JSON schema (an online document): the
    chart's keys are checked, the shape of embedded Kubernetes objects (EnvVar, Probe, ...) is not."""
    if isinstance(node, dict):
        return {
            key: offline_schema(value)
            for key, value in node.items()
            if not (key == "$ref" and isinstance(value, str) and value.startswith(("http://", "https://")))
        }
    if isinstance(node, list):
        return [offline_schema(value) for value in node]
    return node


def schema_errors(schema: dict[str, Any], values: dict[str, Any]) -> list[str]:
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = validator_class(offline_schema(schema))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


def unknown_keys(
    schema: dict[str, Any], node: Any, here: dict[str, Any], defaults: Any, path: str = ""
) -> list[str]:
    """Keys of a values file that neither the schema nor the chart's own values.yaml names, where either
    names its keys. Stricter than the schema alone, which lets many objects take any key (a misspelt
    `runMonitoring.pollIntervalSecs` passes it silently)."""
    definitions = schema.get("$defs") or schema.get("definitions") or {}

    def resolve(sub: dict[str, Any]) -> list[dict[str, Any]]:
        ref = sub.get("$ref", "")
        if ref.startswith("#/"):
            sub = {**definitions[ref.rsplit("/", 1)[1]], **{k: v for k, v in sub.items() if k != "$ref"}}
        options = [sub]
        for keyword in ("anyOf", "oneOf", "allOf"):
            for option in sub.get(keyword, []):
                options.extend(resolve(option))
        return options

    options = resolve(here)
    problems = []
    if isinstance(node, dict):
        named = {k: v for option in options for k, v in (option.get("properties") or {}).items()}
        known = set(named) | (set(defaults) if isinstance(defaults, dict) else set())
        open_map = any(isinstance(option.get("additionalProperties"), dict) for option in options)
        for key, value in node.items():
            if key in known:
                inner_defaults = defaults.get(key) if isinstance(defaults, dict) else None
                problems += unknown_keys(schema, value, named.get(key, {}), inner_defaults, f"{path}.{key}")
            elif known and not open_map:
                problems.append(f"{path}.{key}".lstrip("."))
    elif isinstance(node, list):
        items = [option["items"] for option in options if isinstance(option.get("items"), dict)]
        item_defaults = defaults[0] if isinstance(defaults, list) and defaults else None
        for index, value in enumerate(node):
            problems += unknown_keys(
                schema, value, items[0] if items else {}, item_defaults, f"{path}[{index}]"
            )
    return problems


def chart_checks(chart: Path, values: dict[str, Any]) -> list[str]:
    """Schema errors and unknown keys, for the chart and its user-deployments subchart."""
    problems = []
    parts = [(chart, values)]
    subchart = chart / "charts" / "dagster-user-deployments"
    if (subchart / "values.schema.json").is_file():
        parts.append((subchart, values.get("dagster-user-deployments") or {}))
    for folder, own_values in parts:
        schema = json.loads((folder / "values.schema.json").read_text())
        defaults = load_yaml(folder / "values.yaml")
        problems += [f"{folder.name}: {e}" for e in schema_errors(schema, helm_merge(defaults, own_values))]
    # Unknown keys over the whole file, from the parent chart (its schema and values.yaml name the
    # subchart's keys too, and the parent-only ones such as `dagster-user-deployments.enableSubchart`).
    schema = json.loads((chart / "values.schema.json").read_text())
    defaults = load_yaml(chart / "values.yaml")
    problems += [f"unknown key {key}" for key in unknown_keys(schema, values, schema, defaults)]
    return problems


def test_helm_values_against_the_chart_schema() -> None:
    chart = chart_dir()
    assert chart_checks(chart, load_yaml(HELM_VALUES)) == []


def test_chart_checks_do_find_problems() -> None:
    chart = chart_dir()
    values = load_yaml(HELM_VALUES)
    values["concurrency"]["runs"]["maxConcurrentRuns"] = "ten"
    values["dagsterDaemon"]["runMonitoring"]["pollIntervalSecs"] = 15
    user_deployment(values)["codeServerArg"] = ["-m", "x"]
    problems = "\n".join(chart_checks(chart, values))
    assert "concurrency.runs.maxConcurrentRuns" in problems
    assert "unknown key dagsterDaemon.runMonitoring.pollIntervalSecs" in problems
    assert "codeServerArg" in problems


def test_helm_merge_follows_helm() -> None:
    defaults = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert helm_merge(defaults, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}}
