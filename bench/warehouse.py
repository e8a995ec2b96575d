"""The warehouse of a window, built as the graph builds it: the benchmarks' shared setup."""

from __future__ import annotations

import datetime as dt

from mlops_assets.resources.storage import ObjectStore


def materialize_window(landing: ObjectStore, lake: ObjectStore, first: dt.date, last: dt.date) -> None:
    """The raw assets (reference tables, then the days first..last, with their checks) and dbt's reference
    and daily models, from a replayed landing zone. MLOPS_HOME and DBT_TARGET_PATH must already name the
    home whose warehouse this builds."""
    import dagster as dg

    from mlops_assets.defs.ingestion.assets import build_raw_assets
    from mlops_assets.defs.transform.definitions import build_definitions as transform
    from mlops_assets.lib.calendar import partition_range_tags
    from mlops_assets.lib.settings import load_settings
    from mlops_assets.resources.profiles import build_resources

    raw = list(build_raw_assets())
    resources = {"landing_zone": landing, "lake": lake}
    dg.materialize(raw, selection=["raw/airlines", "raw/airports", "raw/planes"], resources=resources)
    tags = partition_range_tags(first.isoformat(), last.isoformat())
    dg.materialize(raw, selection=["raw/flights", "raw/weather"], resources=resources, tags=tags)
    settings = load_settings()
    defs = dg.Definitions.merge(transform(settings), dg.Definitions(resources=build_resources(settings)))
    assets = list(defs.assets)
    reference = [dg.AssetKey(m) for m in ("stg_airports", "stg_airlines", "stg_planes")]
    dg.materialize(assets, selection=reference, resources=defs.resources)
    daily = [dg.AssetKey(m) for m in ("stg_flights", "stg_weather", "fct_flights")]
    dg.materialize(assets, selection=daily, resources=defs.resources, tags=tags)
