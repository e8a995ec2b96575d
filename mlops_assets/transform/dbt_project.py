"""The dbt project of the transform stage, and its manifest: parsed once, then reused on every load.

Loading the code location reads `dbt/target/manifest.json` and never runs dbt, except when that file
is missing or older than a file of the dbt project (a model, macro, test or yml was edited): then
`dbt parse` runs once (a few seconds), under a file lock, into a temporary folder, and the new
manifest replaces the old one atomically. So, unlike dagster-dbt's `prepare_if_dev()` (which re-parses
on every load under `dagster dev`), a load costs nothing once the manifest is fresh, and an edit of the
dbt project is still picked up by the next load. To refresh it by hand (or when building an image):

    python -m mlops_assets.transform.dbt_project
    dagster-dbt project prepare-and-package --file mlops_assets/transform/dbt_project.py

The manifest describes the graph only (models, tests, columns), so it is always parsed with the
embedded `local` target, which needs no server; runs use the target of the profile (`production`:
PostgreSQL, which needs dbt-postgres).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from dagster_dbt import DbtProject

from mlops_assets.resources.dbt import dbt_executable

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"
# dbt target per platform profile (MLOPS_PROFILE); both live in dbt/profiles.yml.
TARGETS: dict[str, str] = {"local": "local", "production": "production"}
ADAPTERS: dict[str, str] = {"local": "duckdb", "production": "postgres"}
PARSE_TARGET = "local"
# What a manifest is built from: when any of these is newer than the manifest, it is stale.
PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml", "selectors.yml")
PROJECT_DIRS = ("models", "macros", "tests", "seeds", "snapshots", "analyses")
LOCK_TIMEOUT_S = 120

log = logging.getLogger(__name__)


@functools.cache
def dbt_project(profile: str = "local") -> DbtProject:
    """The dbt project with the target of a platform profile; profiles.yml lives inside dbt/."""
    if profile not in TARGETS:
        raise ValueError(f"no dbt target for profile {profile!r}; choose one of {', '.join(TARGETS)}")
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=TARGETS[profile])


def _newest_source_mtime(project_dir: Path) -> float:
    paths = [project_dir / name for name in PROJECT_FILES]
    for folder in PROJECT_DIRS:
        root = project_dir / folder
        if root.is_dir():
            paths.extend(p for p in root.rglob("*") if p.is_file())
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def manifest_is_stale(project: DbtProject) -> bool:
    manifest = project.manifest_path
    return not manifest.exists() or manifest.stat().st_mtime < _newest_source_mtime(project.project_dir)


def _parse(project: DbtProject) -> None:
    """`dbt parse` into a private folder, then move the manifest into place in one rename."""
    scratch = project.manifest_path.parent / f".parse-{uuid.uuid4().hex[:8]}"
    command = [
        dbt_executable(),
        "parse",
        "--quiet",
        "--target-path",
        str(scratch),
        "--log-path",
        str(scratch),
    ]
    command += ["--project-dir", str(project.project_dir), "--profiles-dir", str(project.profiles_dir)]
    command += ["--target", project.target or PARSE_TARGET]
    try:
        # A subprocess, as dagster-dbt's preparer does, without importing dbt into this process.
        completed = subprocess.run(command, cwd=project.project_dir, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed:\n{completed.stdout}{completed.stderr}")
        os.replace(scratch / "manifest.json", project.manifest_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def prepare_manifest(force: bool = False) -> Path:
    """The manifest path, running `dbt parse` first only when the manifest is missing or stale."""
    from filelock import FileLock

    project = dbt_project(PARSE_TARGET)
    if not force and not manifest_is_stale(project):
        return project.manifest_path
    project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(project.manifest_path.with_suffix(".lock"), timeout=LOCK_TIMEOUT_S):
            if force or manifest_is_stale(project):  # another process may have parsed meanwhile
                log.info("parsing the dbt project %s", project.project_dir)
                _parse(project)
    except Exception:
        if not project.manifest_path.exists():
            raise
        # A read-only deployment, for instance: the manifest built with the image is still usable.
        log.warning("could not refresh %s; using the existing one", project.manifest_path, exc_info=True)
    return project.manifest_path


# For `dagster-dbt project prepare-and-package --file mlops_assets/transform/dbt_project.py` (which looks
# for DbtProject objects at the top level of a file; it needs `dbt` on PATH). Reads dbt_project.yml only.
local_dbt_project = dbt_project(PARSE_TARGET)


if __name__ == "__main__":
    print(prepare_manifest(force=True))
