"""Definitions of the transform stage: the dbt assets (and their checks) and the `dbt` resource."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.transform.assets import MlopsDbtTranslator, build_dbt_assets
from mlops_assets.defs.transform.project import ADAPTERS, dbt_project, dbt_resource, prepare_manifest
from mlops_assets.lib.settings import Settings, load_settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Reads the manifest (parsing the dbt project only when it is missing or stale, see project.py)."""
    settings = settings or load_settings()
    project = dbt_project(settings.profile)
    manifest = prepare_manifest()
    # The local warehouse and lake live under MLOPS_HOME; dbt gets the resolved path as a var.
    local = settings.profile == "local"
    base_vars = {"mlops_home": str(settings.home)} if local else {}
    warehouse = settings.home / "warehouse.duckdb" if local else None  # as in dbt/profiles.yml
    translator = MlopsDbtTranslator(ADAPTERS[settings.profile])
    assets = build_dbt_assets(project, manifest, translator, base_vars, warehouse)
    return dg.Definitions(assets=assets, resources={"dbt": dbt_resource(project)})
