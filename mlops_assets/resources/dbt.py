"""The dbt CLI as a resource: the project of `dbt/` with the target of the profile (DuckDB locally,
PostgreSQL in production; both targets are in dbt/profiles.yml)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.lib.settings import Settings

if TYPE_CHECKING:
    from dagster_dbt import DbtCliResource


def dbt_executable() -> str:
    """The dbt installed next to this Python (a virtualenv's bin/ is often not on PATH), else `dbt`."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_resource(settings: Settings) -> DbtCliResource:
    from mlops_assets.resources.dbt_cli import PlatformDbtCli
    from mlops_assets.transform.dbt_project import dbt_project

    return PlatformDbtCli(project_dir=dbt_project(settings.profile), dbt_executable=dbt_executable())
