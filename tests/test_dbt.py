"""The transform stage: the dbt project run through dagster-dbt, in-process, on three real days."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from dagster_dbt import DbtCliResource

from mlops_assets.defs.transform.assets import GROUP, OWNER
from mlops_assets.lib.calendar import daily_partitions
from mlops_assets.lib.settings import load_settings
from tests.conftest import materialize_raw

DAYS = ("2013-01-01", "2013-01-02", "2013-01-03")
ROWS = {"2013-01-01": 842, "2013-01-02": 943, "2013-01-03": 914}  # accepted raw flights per day
REFERENCE_MODELS = ("stg_airports", "stg_airlines", "stg_planes")
DAILY_MODELS = ("stg_flights", "stg_weather", "fct_flights")
SOURCES = {
    "stg_flights": "raw/flights",
    "stg_weather": "raw/weather",
    "stg_airports": "raw/airports",
    "stg_airlines": "raw/airlines",
    "stg_planes": "raw/planes",
}
LEAKS = {"dep_delay", "dep_time", "arr_time", "air_time"}
FLIGHT_KEY = ["carrier", "flight", "origin", "year", "month", "day", "sched_dep_time"]  # the raw contract's


def transform_definitions(profile: str = "local") -> dg.Definitions:
    from mlops_assets.defs.transform.definitions import build_definitions
    from mlops_assets.resources.profiles import build_resources

    settings = load_settings({"MLOPS_PROFILE": profile} if profile != "local" else None)
    return dg.Definitions.merge(
        build_definitions(settings), dg.Definitions(resources=build_resources(settings))
    )


def run_dbt(defs: dg.Definitions, models, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(defs.assets), selection=[dg.AssetKey(m) for m in models], resources=defs.resources, **kwargs
    )


def query(home, sql: str) -> pd.DataFrame:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).df()


def check_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    evaluations = result.get_asset_check_evaluations()
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed for e in evaluations}


def materialization_metadata(result: dg.ExecuteInProcessResult, model: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(model)]
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def facts_with_raw_key(facts: pd.DataFrame) -> pd.DataFrame:
    """fct_flights with the raw contract's key rebuilt from its local departure time."""
    local = facts["sched_dep_local"]
    return facts.assign(
        flight=facts["flight_number"].astype("int64"),
        year=local.dt.year.astype("int64"),
        month=local.dt.month.astype("int64"),
        day=local.dt.day.astype("int64"),
        sched_dep_time=(local.dt.hour * 100 + local.dt.minute).astype("int64"),
    )


@pytest.fixture
def home(reference_ready, tmp_path, monkeypatch):
    """Three real days in the lake at tmp_path/lake; MLOPS_HOME=tmp_path for the definitions and dbt."""
    landing, lake = reference_ready
    assert materialize_raw(landing, lake, ["raw/flights", "raw/weather"], partition_range=(DAYS[0], DAYS[-1]))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    # dagster-dbt writes each invocation's artifacts under this folder (default: dbt/target).
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    return tmp_path


def test_fct_flights_is_built_per_partition_correct_and_incremental(home):
    defs = transform_definitions()
    reference = run_dbt(defs, REFERENCE_MODELS)
    window = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}
    daily = run_dbt(defs, DAILY_MODELS, tags=window)
    assert reference.success and daily.success

    # Every dbt test of these models ran as an asset check, and passed.
    checks = {**check_outcomes(reference), **check_outcomes(daily)}
    graph = defs.resolve_asset_graph()
    models = {dg.AssetKey(m) for m in REFERENCE_MODELS + DAILY_MODELS}
    expected = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.get_check_keys_for_assets(models)}
    assert set(checks) == expected and len(expected) >= 25
    assert all(checks.values()), sorted(name for name, passed in checks.items() if not passed)
    metadata = materialization_metadata(daily, "fct_flights")
    assert metadata["dagster/row_count"] == metadata["rows_in_window"] == sum(ROWS.values())

    # One row per accepted raw flight, per day: nothing dropped, nothing duplicated.
    raw = pd.concat(pd.read_parquet(home / "lake" / "raw" / "flights" / f"{day}.parquet") for day in DAYS)
    facts = query(home, "select * from marts.fct_flights")
    assert facts.groupby(facts["flight_date"].astype(str)).size().to_dict() == ROWS
    assert len(raw) == len(facts) and facts["flight_id"].is_unique
    assert not LEAKS & set(facts.columns)

    joined = facts_with_raw_key(facts).merge(
        raw.astype({c: "int64" for c in ["flight", "year", "month", "day", "sched_dep_time"]}),
        on=FLIGHT_KEY,
        suffixes=("", "_raw"),
        validate="one_to_one",
    )
    assert len(joined) == len(raw)
    # The time zone conversion: the UTC scheduled departure, truncated to the hour, is raw time_hour.
    departure_hour = joined["sched_dep_utc"].dt.tz_convert("UTC").dt.floor("h")
    assert (departure_hour == joined["time_hour"].dt.tz_convert("UTC")).all()
    assert (joined["prediction_time_utc"] == joined["sched_dep_utc"] - pd.Timedelta(hours=2)).all()
    # The label: null exactly where raw arr_delay is, else arr_delay > 15.
    no_arrival = joined["arr_delay_raw"].isna()
    assert no_arrival.any() and (joined["label_late"].isna() == no_arrival).all()
    assert (joined["is_cancelled_or_diverted"] == no_arrival).all()
    arrived = joined[~no_arrival]
    assert (arrived["label_late"] == (arrived["arr_delay_raw"] > 15).astype(int)).all()
    # Destinations missing from airports (Puerto Rico, Virgin Islands) get their fallback time zone.
    assert set(joined.loc[joined["dest"] == "SJU", "dest_tzone"]) == {"America/Puerto_Rico"}

    # Incremental: re-running one partition replaces that day (delete+insert), never duplicates it.
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.sql("insert into marts.fct_flights (flight_id, flight_date) values ('stale', date '2013-01-02')")
    again = run_dbt(defs, ["fct_flights"], partition_key="2013-01-02")
    assert again.success and check_outcomes(again) and all(check_outcomes(again).values())
    assert materialization_metadata(again, "fct_flights")["dagster/partition_row_count"] == ROWS["2013-01-02"]
    counts = query(
        home,
        "select cast(flight_date as varchar) as day, count(*) as n, count(distinct flight_id) as ids "
        "from marts.fct_flights group by 1 order by 1",
    )
    assert counts.to_dict("list") == {"day": list(DAYS), "n": list(ROWS.values()), "ids": list(ROWS.values())}


def test_sources_are_the_raw_assets_in_one_graph():
    from mlops_assets.defs.ingestion.definitions import build_definitions as ingestion

    defs = dg.Definitions.merge(ingestion(load_settings()), transform_definitions())
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        *SOURCES.values(),
        *REFERENCE_MODELS,
        *DAILY_MODELS,
    }
    for model, source in SOURCES.items():
        assert graph.get(dg.AssetKey(model)).parent_keys == {dg.AssetKey.from_user_string(source)}
    fct = graph.get(dg.AssetKey("fct_flights"))
    assert fct.parent_keys == {dg.AssetKey(m) for m in ("stg_flights", *REFERENCE_MODELS)}
    assert fct.backfill_policy == dg.BackfillPolicy.single_run()
    for model in REFERENCE_MODELS + DAILY_MODELS:
        node = graph.get(dg.AssetKey(model))
        assert node.group_name == GROUP and node.owners == [OWNER] and node.description
        assert set(node.kinds) == {"dbt", "duckdb"}
        assert (node.partitions_def == daily_partitions()) == (model in DAILY_MODELS)
    specs = [graph.get_check_spec(k) for k in graph.get_check_keys_for_assets({fct.key})]
    names = {spec.name for spec in specs}
    assert {
        "unique_fct_flights_flight_id",
        "relationships_fct_flights_carrier__carrier__ref_stg_airlines_",
    } <= names
    assert all(spec.blocking and spec.description for spec in specs)
    assert isinstance(defs.resources["dbt"], DbtCliResource) and defs.resources["dbt"].target == "local"


def test_production_profile_runs_dbt_on_its_target():
    defs = transform_definitions("production")
    assert defs.resources["dbt"].target == "production"
    assert set(defs.resolve_asset_graph().get(dg.AssetKey("fct_flights")).kinds) == {"dbt", "postgres"}


def test_manifest_is_parsed_once_then_reused():
    from mlops_assets.transform.dbt_project import dbt_project, manifest_is_stale, prepare_manifest

    path = prepare_manifest()
    stamp = path.stat().st_mtime_ns
    assert not manifest_is_stale(dbt_project())
    assert prepare_manifest() == path and path.stat().st_mtime_ns == stamp
