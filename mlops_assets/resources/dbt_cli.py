"""dagster-dbt's DbtCliResource without two costs per dbt step that the platform never uses.

Before each `dbt build`, `DbtCliResource.cli` runs `dbt --version` in a subprocess (to tell dbt-core from
the Fusion engine; 2.4 to 3.5 s here) and sets up a dbt-core adapter inside the run's process (about
1.6 s: dbt's imports, the profile, the project's macros), a handle that only `fetch_row_counts` and
`fetch_column_metadata` use; the platform counts rows itself (transform/assets.py). A landed day's one
dbt step paid both, about a tenth of its freshness. Here the version is dbt-core's installed package
when the executable is the one next to this Python (the same installation), and no adapter handle is
made. Both are members dagster-dbt keeps private: tests/test_dbt_cli.py fails when they change.
"""

from __future__ import annotations

import sys
from functools import cached_property
from importlib import metadata
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging import version


class PlatformDbtCli(DbtCliResource):
    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == Path(sys.executable).parent / "dbt":
            return version.parse(metadata.version("dbt-core"))
        return DbtCliResource._cli_version.func(self)  # another dbt: ask it, as dagster-dbt does

    def _initialize_dbt_core_adapter(self, args):
        return None
