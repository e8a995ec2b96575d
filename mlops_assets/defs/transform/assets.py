"""The dbt models as Dagster assets, in the same graph as the raw assets they read.

Two `@dbt_assets` over one manifest: the models tagged `daily` in dbt (stg_flights, stg_weather,
fct_flights) are partitioned like raw/flights (local New York days, single-run backfills: a window of
days is one `dbt build --vars '{"min_date": ..., "max_date": ...}'`); the reference views
(stg_airports, stg_airlines, stg_planes) are not partitioned. dbt sources map onto the raw asset keys
of the ingestion stage, and dbt tests are asset checks of the model they test (blocking when their
severity is `error`, dbt's default).

Before each `dbt build` the `warehouse` resource makes the raw sources match the lake (warehouse.py):
nothing to do on DuckDB, which reads the Parquet in place; on PostgreSQL the run's days (or the
reference tables) are loaded into schema `raw`, and the loaded row counts go into the metadata.
"""

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from mlops_assets.lib.automation import on_new_data
from mlops_assets.lib.calendar import daily_partitions, days_between, window_bounds
from mlops_assets.resources.warehouse import DAILY_RAW_TABLES, REFERENCE_RAW_TABLES, Warehouse

GROUP = "transform"
OWNER = "team:analytics-engineering"
RAW_SOURCE = "raw"
DAILY_TAG = "daily"  # dbt tag of the models partitioned by day
REFERENCE_MODEL_KEYS = [dg.AssetKey(f"stg_{table}") for table in REFERENCE_RAW_TABLES]
# The warehouse of the local profile is one DuckDB file with a single writer: the dbt steps share this
# pool, which the instances (deploy/*/dagster.yaml, pools default_limit 1) run one at a time; on
# PostgreSQL it also keeps two raw loads of the same table from racing.
POOL = "dbt_warehouse"


class MlopsDbtTranslator(DagsterDbtTranslator):
    """dbt sources -> existing raw asset keys; models -> group `transform`, one owner, described."""

    def __init__(self, adapter: str = "duckdb"):
        super().__init__(
            settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_code_references=True)
        )
        self.adapter = adapter

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if (
            dbt_resource_props["resource_type"] == "source"
            and dbt_resource_props["source_name"] == RAW_SOURCE
        ):
            return dg.AssetKey([RAW_SOURCE, dbt_resource_props["name"]])
        # Models keep their plain names (`stg_flights`, `fct_flights`: the graph's public keys), not
        # dagster-dbt's default `<schema>/<name>`.
        return dg.AssetKey([dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return [OWNER]

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        fqn = dbt_resource_props.get("fqn", [])
        layer = {"staging": "staging", "marts": "mart"}.get(fqn[1] if len(fqn) > 2 else "", "transform")
        return {**super().get_tags(dbt_resource_props), "layer": layer}

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None):
        spec = super().get_asset_spec(manifest, unique_id, project)
        # The manifest is parsed with the embedded target; the kind says where the model runs. Each
        # model follows its landed days by itself (declarative automation); a re-delivered reference
        # table does not recompute every past day (that is a backfill a person decides on).
        condition = on_new_data(ignore_updates_of=REFERENCE_MODEL_KEYS)
        return spec.replace_attributes(kinds={"dbt", self.adapter}, automation_condition=condition)

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project):
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        test = self.get_resource_props(manifest, unique_id)
        return spec._replace(description=describe_test(test, asset_spec.key))


def describe_test(test: Mapping[str, Any], key: dg.AssetKey) -> str:
    """A check description from the test, e.g. `dbt test unique on fct_flights.flight_id`."""
    if test.get("description"):
        return test["description"]
    metadata = test.get("test_metadata") or {}
    kwargs = {k: v for k, v in (metadata.get("kwargs") or {}).items() if k not in ("model", "column_name")}
    target = key.to_user_string() + (f".{test['column_name']}" if test.get("column_name") else "")
    arguments = ", ".join(f"{k}: {v}" for k, v in kwargs.items())
    return f"dbt test {metadata.get('name', test['name'])} on {target}" + (
        f" ({arguments})" if arguments else ""
    )


def partition_vars(window: dg.TimeWindow) -> dict[str, str]:
    """The inclusive local dates of a partition window: [start, end) of days -> min_date..max_date."""
    first, last = window_bounds(window)
    return {"min_date": first.isoformat(), "max_date": last.isoformat()}


def table_models(manifest: Mapping[str, Any], translator: MlopsDbtTranslator) -> dict[str, dict[str, str]]:
    """Models materialized as tables, by output name: relation, and the date column of partitioned ones
    (model config `meta: {partition_date_column: ...}`). Views are not counted (that runs their query)."""
    tables = {}
    for node in manifest["nodes"].values():
        config = node.get("config", {})
        if node["resource_type"] == "model" and config.get("materialized") in ("table", "incremental"):
            key = translator.get_asset_key(node)
            tables[key.to_python_identifier()] = {
                # schema.name without the database: the manifest is parsed with the DuckDB target (its
                # database is the file's name), the build may run on PostgreSQL.
                "relation": f'"{node["schema"]}"."{node.get("alias") or node["name"]}"',
                "date_column": (config.get("meta") or {}).get("partition_date_column", ""),
            }
    return tables


def source_tables(manifest: Mapping[str, Any], translator: MlopsDbtTranslator) -> dict[str, list[str]]:
    """The raw tables each model reads directly (dbt `source('raw', ...)`), by output name."""
    sources = manifest.get("sources", {})
    found: dict[str, list[str]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        parents = [sources[p] for p in node.get("depends_on", {}).get("nodes", []) if p in sources]
        raw = [p["name"] for p in parents if p["source_name"] == RAW_SOURCE]
        if raw:
            found[translator.get_asset_key(node).to_python_identifier()] = raw
    return found


def load_raw(
    context: dg.AssetExecutionContext, warehouse: Warehouse, tables, days: list[dt.date] | None = None
) -> dict[str, int]:
    """The warehouse's raw sources brought in line with the lake before dbt reads them."""
    loaded = warehouse.load_raw(tables, days)
    if loaded:
        context.log.info(f"loaded raw rows into {warehouse.describe()}: {loaded}")
    return loaded


def count_rows(
    warehouse: Warehouse, table: Mapping[str, str], window: Mapping[str, str] | None
) -> dict[str, Any]:
    """Row counts of a table in the warehouse, and per day of the run's window if partitioned."""
    column, first, last = None, None, None
    if window and table["date_column"]:
        column = table["date_column"]
        first, last = (dt.date.fromisoformat(window[key]) for key in ("min_date", "max_date"))
    total, per_day = warehouse.row_counts(table["relation"], column, first, last)
    metadata: dict[str, Any] = {"dagster/row_count": total}
    if window and table["date_column"]:
        metadata["rows_in_window"] = sum(n for _, n in per_day)
        if window["min_date"] == window["max_date"]:
            metadata["dagster/partition_row_count"] = metadata["rows_in_window"]
        if len(per_day) <= 62:
            lines = ["| day | rows |", "| --- | ---: |", *(f"| {day} | {n} |" for day, n in per_day)]
            metadata["rows_per_day"] = dg.MetadataValue.md("\n".join(lines))
    return metadata


def stream_with_row_counts(
    invocation,
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    tables,
    window=None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[Any]:
    """dagster-dbt's events, with row counts on the tables' materializations (and `extra` metadata by
    output name, e.g. the raw rows loaded for a staging view).

    The DuckDB file has one writer, the dbt process, so the counts are read once it has exited: the
    events are held until then (as dagster-dbt's own fetch_row_counts does on DuckDB), and those of a
    failed build are still reported before its error is raised. PostgreSQL is counted the same way, so
    both warehouses give the same metadata (total, rows in the window, rows per day).
    """
    events: list[Any] = []
    failure: Exception | None = None
    try:
        events.extend(invocation.stream())
    except Exception as error:
        failure = error
    counts: dict[str, dict[str, Any]] = {name: dict(values) for name, values in (extra or {}).items()}
    for event in events:
        if isinstance(event, dg.Output) and event.output_name in tables:
            try:
                counts.setdefault(event.output_name, {}).update(
                    count_rows(warehouse, tables[event.output_name], window)
                )
            except Exception as error:  # metadata only: never fail a build over it
                context.log.warning(f"could not count rows of {event.output_name}: {error}")
    for event in events:
        extra = counts.get(getattr(event, "output_name", None) or "")
        yield event.with_metadata({**event.metadata, **extra}) if extra else event
    if failure is not None:
        raise failure


def build_dbt_assets(
    project: DbtProject,
    manifest: Path,
    translator: MlopsDbtTranslator,
    base_vars: Mapping[str, str],
) -> list[dg.AssetsDefinition]:
    """The partitioned and the unpartitioned dbt assets of one manifest.

    `base_vars` go to every invocation (the local profile passes `mlops_home`, so dbt reads the same
    lake and warehouse as the rest of the platform). Both assets need the `warehouse` resource
    (warehouse.py): it loads the raw sources before the build and counts the tables' rows after it.
    """
    manifest_json = json.loads(manifest.read_text())  # read once for both definitions
    tables = table_models(manifest_json, translator)
    sources = source_tables(manifest_json, translator)

    def stream(invocation, context, warehouse: Warehouse, loaded: dict[str, int], window=None):
        extra = {
            output: {"raw_rows_loaded": dg.MetadataValue.json({t: loaded[t] for t in raw if t in loaded})}
            for output, raw in sources.items()
            if any(t in loaded for t in raw)
        }
        return stream_with_row_counts(invocation, context, warehouse, tables, window, extra)

    @dbt_assets(
        manifest=manifest_json,
        project=project,
        select=f"tag:{DAILY_TAG}",
        name="dbt_daily_models",
        partitions_def=daily_partitions(),
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
        pool=POOL,
    )
    def dbt_daily_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
        window = partition_vars(context.partition_time_window)
        first, last = (dt.date.fromisoformat(window[k]) for k in ("min_date", "max_date"))
        loaded = load_raw(context, warehouse, DAILY_RAW_TABLES, days_between(first, last))
        context.log.info(f"dbt build of the local days {window['min_date']}..{window['max_date']}")
        invocation = dbt.cli(["build", "--vars", json.dumps({**base_vars, **window})], context=context)
        yield from stream(invocation, context, warehouse, loaded, window)

    @dbt_assets(
        manifest=manifest_json,
        project=project,
        exclude=f"tag:{DAILY_TAG}",
        name="dbt_reference_models",
        dagster_dbt_translator=translator,
        pool=POOL,
    )
    def dbt_reference_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
        loaded = load_raw(context, warehouse, REFERENCE_RAW_TABLES)
        invocation = dbt.cli(["build", "--vars", json.dumps(dict(base_vars))], context=context)
        yield from stream(invocation, context, warehouse, loaded)

    return [dbt_daily_models, dbt_reference_models]
