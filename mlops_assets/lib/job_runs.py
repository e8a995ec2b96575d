"""A RunRequest run by `dagster job execute` of this code location, in a process of its own: the run
shows in the UI under its job's name, with the request's run config and tags, as a sensor's run would."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlops_assets.lib.run_output import follow

CODE_LOCATION = ["-m", "mlops_assets.definitions", "-a", "defs"]


def job_execute_command(job_name: str, config_file: str, tags: dict[str, str]) -> list[str]:
    return [
        *[sys.executable, "-m", "dagster", "job", "execute", *CODE_LOCATION, "-j", job_name],
        *["-c", config_file, "--tags", json.dumps(tags)],
    ]


def execute_request(job_name: str, request: Any, run_config: dict | None = None) -> None:
    """Runs `request` (a dg.RunRequest) as a run of `job_name`, `run_config` merged under the request's;
    exits with the run's output when it fails. `dagster job execute` reads run config from files only."""
    config = {**(run_config or {}), **request.run_config}
    with tempfile.TemporaryDirectory(prefix="mlops-run-") as folder:
        config_file = Path(folder) / "run_config.json"
        config_file.write_text(json.dumps(config))
        print(f"$ dagster job execute -j {job_name} --tags {shlex.quote(json.dumps(request.tags))}")
        command = job_execute_command(job_name, str(config_file), request.tags)
        code, output = follow(command)
    if code != 0:
        sys.stderr.write(output[-12000:])
        raise SystemExit(f"job {job_name} failed (exit {code})")
