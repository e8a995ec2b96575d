"""The dbt models as Dagster assets, in the same graph as the raw assets they read.

Two `@dbt_assets` over one manifest: the models tagged `daily` in dbt (stg_flights, stg_weather,
fct_flights) are partitioned like raw/flights (local New York days, single-run backfills: a window of
days is one `dbt build --vars '{"min_date": ..., "max_date": ...}'`); the reference views
(stg_airports, stg_airlines, stg_planes) are not partitioned. dbt sources map onto the raw asset keys
of the ingestion stage, and dbt tests are asset checks of the model they test (blocking when their
severity is `error`, dbt's default).
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

from mlops_assets.lib.calendar import daily_partitions

GROUP = "transform"
OWNER = "team:analytics-engineering"
RAW_SOURCE = "raw"
DAILY_TAG = "daily"  # dbt tag of the models partitioned by day
# The warehouse of the local profile is one DuckDB file with a single writer: the dbt steps share this
# pool, which the local instance (deploy/local/dagster.yaml, pools default_limit 1) runs one at a time.
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
        # The manifest is parsed with the embedded target; the kind says where the model runs.
        return spec.replace_attributes(kinds={"dbt", self.adapter})

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
    return {
        "min_date": window.start.date().isoformat(),
        "max_date": (window.end - dt.timedelta(days=1)).date().isoformat(),
    }


def table_models(manifest: Mapping[str, Any], translator: MlopsDbtTranslator) -> dict[str, dict[str, str]]:
    """Models materialized as tables, by output name: relation, and the date column of partitioned ones
    (model config `meta: {partition_date_column: ...}`). Views are not counted (that runs their query)."""
    tables = {}
    for node in manifest["nodes"].values():
        config = node.get("config", {})
        if node["resource_type"] == "model" and config.get("materialized") in ("table", "incremental"):
            key = translator.get_asset_key(node)
            tables[key.to_python_identifier()] = {
                "relation": node["relation_name"],
                "date_column": (config.get("meta") or {}).get("partition_date_column", ""),
            }
    return tables


def count_rows(warehouse: Path, table: Mapping[str, str], window: Mapping[str, str] | None) -> dict[str, Any]:
    """Row counts of a table in the DuckDB warehouse, and per day of the run's window if partitioned."""
    import duckdb

    per_day: list[tuple[str, int]] = []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (total,) = con.execute(f"select count(*) from {table['relation']}").fetchone()
        if window and table["date_column"]:
            column = table["date_column"]
            per_day = con.execute(
                f"select cast({column} as varchar), count(*) from {table['relation']} "
                f"where {column} between cast(? as date) and cast(? as date) group by 1 order by 1",
                [window["min_date"], window["max_date"]],
            ).fetchall()
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
    invocation, context: dg.AssetExecutionContext, warehouse: Path, tables, window=None
) -> Iterator[Any]:
    """dagster-dbt's events, with row counts on the tables' materializations.

    The DuckDB file has one writer, the dbt process, so the counts are read once it has exited: the
    events are held until then (as dagster-dbt's own fetch_row_counts does on DuckDB), and those of a
    failed build are still reported before its error is raised.
    """
    events: list[Any] = []
    failure: Exception | None = None
    try:
        events.extend(invocation.stream())
    except Exception as error:
        failure = error
    counts: dict[str, dict[str, Any]] = {}
    for event in events:
        if isinstance(event, dg.Output) and event.output_name in tables:
            try:
                counts[event.output_name] = count_rows(warehouse, tables[event.output_name], window)
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
    warehouse: Path | None = None,
) -> list[dg.AssetsDefinition]:
    """The partitioned and the unpartitioned dbt assets of one manifest.

    `base_vars` go to every invocation (the local profile passes `mlops_home`, so dbt reads the same
    lake and warehouse as the rest of the platform). `warehouse`: the DuckDB file whose tables get
    row counts (None: the adapter is not DuckDB and dagster-dbt's fetch_row_counts does it).
    """
    manifest_json = json.loads(manifest.read_text())  # read once for both definitions
    tables = table_models(manifest_json, translator)

    def stream(invocation, context, window=None):
        if warehouse is None:
            return invocation.stream().fetch_row_counts()
        return stream_with_row_counts(invocation, context, warehouse, tables, window)

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
    def dbt_daily_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        window = partition_vars(context.partition_time_window)
        context.log.info(f"dbt build of the local days {window['min_date']}..{window['max_date']}")
        invocation = dbt.cli(["build", "--vars", json.dumps({**base_vars, **window})], context=context)
        yield from stream(invocation, context, window)

    @dbt_assets(
        manifest=manifest_json,
        project=project,
        exclude=f"tag:{DAILY_TAG}",
        name="dbt_reference_models",
        dagster_dbt_translator=translator,
        pool=POOL,
    )
    def dbt_reference_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        yield from stream(dbt.cli(["build", "--vars", json.dumps(dict(base_vars))], context=context), context)

    return [dbt_daily_models, dbt_reference_models]
