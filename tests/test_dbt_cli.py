"""The platform's dbt resource (resources/dbt_cli.py) skips dagster-dbt's `dbt --version` subprocess and
its in-process adapter handle, and still reports the version that `dbt --version` gives. It overrides
members dagster-dbt keeps private: the guard below fails when a dagster-dbt upgrade renames or stops
using them (then the override would silently do nothing, or break `cli`)."""

from __future__ import annotations

import inspect
import re
import subprocess
from functools import cached_property

import pytest
from dagster_dbt import DbtCliResource

from mlops_assets.resources.dbt import dbt_executable
from mlops_assets.resources.dbt_cli import PlatformDbtCli
from mlops_assets.transform.dbt_project import DBT_PROJECT_DIR


def test_the_members_it_overrides_are_still_dagster_dbts():
    assert isinstance(inspect.getattr_static(DbtCliResource, "_cli_version"), cached_property)
    assert callable(inspect.getattr_static(DbtCliResource, "_initialize_dbt_core_adapter"))
    source = inspect.getsource(DbtCliResource.cli)
    assert "self._cli_version" in source and "self._initialize_dbt_core_adapter(" in source


def test_the_version_is_the_installed_dbts_without_running_it(monkeypatch, tmp_path):
    import dagster_dbt.core.resource as resource_module

    reported = subprocess.check_output([dbt_executable(), "--version"], text=True)
    expected = re.search(r"(\d+\.\d+\.\d+)", reported).group(1)

    def no_subprocess(*args, **kwargs):
        raise AssertionError("dbt --version ran")

    monkeypatch.setattr(resource_module, "check_output", no_subprocess)
    cli = PlatformDbtCli(project_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable())
    assert str(cli._cli_version) == expected
    assert cli._initialize_dbt_core_adapter(["build"]) is None
    # Another executable (a Fusion engine, say) is still asked, as dagster-dbt asks it.
    fusion = tmp_path / "dbt"
    fusion.write_text("#!/bin/sh\necho 'dbt-fusion 2.0.0'\n")
    fusion.chmod(0o755)
    other = PlatformDbtCli(project_dir=str(DBT_PROJECT_DIR), dbt_executable=str(fusion))
    with pytest.raises(AssertionError, match="dbt --version ran"):
        _ = other._cli_version
