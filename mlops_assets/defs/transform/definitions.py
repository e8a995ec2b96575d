"""Definitions of the transform stage: the dbt models as assets, dbt tests as their checks."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.transform.assets import MlopsDbtTranslator, build_dbt_assets
from mlops_assets.lib.settings import Settings
from mlops_assets.transform.dbt_project import ADAPTERS, dbt_project, prepare_manifest


def build_definitions(settings: Settings) -> dg.Definitions:
    """Reads the manifest (parsing the dbt project only when it is missing or stale, see dbt_project.py)."""
    project = dbt_project(settings.profile)
    manifest = prepare_manifest()
    # The local warehouse and lake live under MLOPS_HOME; dbt gets the resolved path as a var.
    base_vars = {"mlops_home": str(settings.home)} if settings.profile == "local" else {}
    translator = MlopsDbtTranslator(ADAPTERS[settings.profile])
    return dg.Definitions(assets=build_dbt_assets(project, manifest, translator, base_vars))
