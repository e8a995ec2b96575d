"""The daily graph's automation rule on a small graph of its own: new data flows down in one tick, and
never past a blocking check that failed, whether the check ran in an earlier run or in the same one."""

from __future__ import annotations

import dagster as dg
import pytest

from mlops_assets.lib.automation import on_new_data

DAY = "2013-01-02"
PARTITIONS = dg.DailyPartitionsDefinition(start_date="2013-01-01", end_date="2013-01-05")


def build_graph(verdicts: dict[str, bool]) -> list[dg.AssetsDefinition]:
    """raw -> clean (blocking check, its verdict from `verdicts`) -> report, all daily."""

    @dg.asset(partitions_def=PARTITIONS)
    def raw() -> None: ...

    @dg.asset(
        deps=[raw],
        partitions_def=PARTITIONS,
        automation_condition=on_new_data(),
        check_specs=[dg.AssetCheckSpec("valid", asset="clean", blocking=True)],
    )
    def clean():
        yield dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=verdicts["clean"])])

    @dg.asset(deps=[clean], partitions_def=PARTITIONS, automation_condition=on_new_data())
    def report() -> None: ...

    return [raw, clean, report]


def requested(instance, assets, cursor=None):
    result = dg.evaluate_automation_conditions(defs=assets, instance=instance, cursor=cursor)
    keys = {
        key.to_user_string(): set(parts) for key, parts in result._requested_partitions_by_asset_key.items()
    }
    return keys, result.cursor


def materialize(instance, assets, *names: str) -> dg.ExecuteInProcessResult:
    selection = [dg.AssetKey(name) for name in names]
    return dg.materialize(
        assets, selection=selection, instance=instance, partition_key=DAY, raise_on_error=False
    )


@pytest.mark.parametrize("check_passes", [True, False])
def test_a_landed_day_flows_down_in_one_tick_and_one_run_but_not_past_a_failed_check(check_passes):
    assets = build_graph({"clean": check_passes})
    with dg.DagsterInstance.ephemeral() as instance:
        _, cursor = requested(instance, assets)
        materialize(instance, assets, "raw")  # what the landing sensor's run does
        keys, cursor = requested(instance, assets, cursor)
        # clean and report in the same tick: report does not wait for a run of clean to end first
        assert keys == {"clean": {DAY}, "report": {DAY}}
        run = materialize(instance, assets, "clean", "report")  # the run the daemon launches for the tick
        reported = [m.partition for m in run.asset_materializations_for_node("report")]
        # in the run, a failing blocking check of clean skips report
        assert reported == ([DAY] if check_passes else [])
        assert run.success is check_passes
        # and later ticks do not retry report on the day whose check failed
        keys, cursor = requested(instance, assets, cursor)
        assert keys == {}


def test_a_day_whose_check_failed_in_an_earlier_run_is_not_carried_downstream():
    verdicts = {"clean": False}
    assets = build_graph(verdicts)
    with dg.DagsterInstance.ephemeral() as instance:
        _, cursor = requested(instance, assets)
        materialize(instance, assets, "raw", "clean")  # e.g. by hand: clean's blocking check fails
        keys, cursor = requested(instance, assets, cursor)
        assert "report" not in keys
        verdicts["clean"] = True  # the day corrected and re-delivered: new data, the check passes
        materialize(instance, assets, "raw")
        keys, cursor = requested(instance, assets, cursor)
        assert keys == {"clean": {DAY}, "report": {DAY}}


@pytest.mark.parametrize("check_passes", [True, False])
def test_a_day_run_from_landing_to_report_at_once_is_not_run_again_by_automation(check_passes):
    """What ingestion/day_chain.py relies on: a run that materializes raw and everything after it leaves
    automation nothing to do for that day (each partition was materialized after its inputs, which
    `since_last_handled` counts as handled), and a failing blocking check stops the run there, without a
    later tick carrying the day past it."""
    assets = build_graph({"clean": check_passes})
    with dg.DagsterInstance.ephemeral() as instance:
        _, cursor = requested(instance, assets)
        run = materialize(instance, assets, "raw", "clean", "report")  # the landing sensor's one run
        reported = [m.partition for m in run.asset_materializations_for_node("report")]
        assert reported == ([DAY] if check_passes else [])
        for _ in range(2):  # the next ticks
            keys, cursor = requested(instance, assets, cursor)
            assert keys == {}
