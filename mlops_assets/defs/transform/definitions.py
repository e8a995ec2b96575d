"""Definitions of the transform stage: the dbt assets (and their checks), the `dbt` resource and the
`warehouse` resource (DuckDB locally, PostgreSQL in production; the features stage reads it too)."""

from __future__ import annotations

import dagster as dg

from mlops_assets.defs.transform.assets import MlopsDbtTranslator, build_dbt_assets
from mlops_assets.lib.settings import Settings, load_settings
from mlops_assets.resources.warehouse import warehouse_resource
from mlops_assets.transform.dbt_project import ADAPTERS, dbt_project, dbt_resource, prepare_manifest


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Reads the manifest (parsing the dbt project only when it is missing or stale, see project.py)."""
    settings = settings or load_settings()
    project = dbt_project(settings.profile)
    manifest = prepare_manifest()
    # The local warehouse and lake live under MLOPS_HOME; dbt gets the resolved path as a var.
    base_vars = {"mlops_home": str(settings.home)} if settings.profile == "local" else {}
    translator = MlopsDbtTranslator(ADAPTERS[settings.profile])
    assets = build_dbt_assets(project, manifest, translator, base_vars)
    resources = {"dbt": dbt_resource(project), "warehouse": warehouse_resource(settings)}
    return dg.Definitions(assets=assets, resources=resources)
