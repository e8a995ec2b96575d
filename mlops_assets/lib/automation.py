"""The automation conditions of the daily graph.

Dagster's `AutomationCondition.eager()` only acts on the latest time window. The data set's partitions
are the days of 2013 and a replay lands them in the past, so the daily assets use a rule without that
restriction: a partition runs when an upstream partition was updated (or is requested in the same tick),
once nothing upstream is missing or in progress, and only when every blocking check upstream passed (or
runs before it in the same run), so an asset never runs on data that failed validation.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg


def on_new_data(ignore_updates_of: Sequence[dg.AssetKey] = ()) -> dg.AutomationCondition:
    """Run each partition when its inputs change (new data), once they are all there and valid.

    `ignore_updates_of`: upstream assets whose updates must not recompute history (e.g. a new champion
    must not re-score past days: each prediction keeps the version that made it).
    """
    updated = dg.AutomationCondition.any_deps_updated()
    if ignore_updates_of:
        updated = updated.ignore(dg.AssetSelection.assets(*ignore_updates_of))
    # Not `newly_missing`: a partition that never had data stays missing until its data arrives. The
    # first daemon tick on a home built through the CLI would otherwise score and report every past day.
    return (
        updated.since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & upstream_checks_passed()
    ).with_label("on new data, upstream checks passed")


def upstream_checks_passed() -> dg.AutomationCondition:
    """Every upstream asset's blocking checks passed, or that asset runs in this same tick's run.

    Dagster's `all_deps_blocking_checks_passed` accepts a check that "will be requested" this tick, but a
    check of a partitioned asset is never requested by itself (it has no partitions of its own), so each
    asset with blocking checks cost a run and a tick: a landed day went dbt, then fct_flights, then
    features, in three runs. An upstream asset requested in the same tick is executed in the same run,
    with its checks, before this one, and a failing blocking check there still skips every step
    downstream of it: the guarantee holds, in one run."""
    checks_passed = dg.AutomationCondition.all_checks_match(
        dg.AutomationCondition.check_passed() | dg.AutomationCondition.will_be_requested(), blocking_only=True
    )
    return dg.AutomationCondition.all_deps_match(
        checks_passed | dg.AutomationCondition.will_be_requested()
    ).with_label("upstream blocking checks passed (or checked in this run)")


AUTOMATION_SENSOR = "daily_graph_automation"


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates every asset's automation condition about every 10 s rather than Dagster's default 30 s: the
    wait for the next evaluation is part of every landed day's time to its drift report. The interval is
    9 s: the daemon looks every 5 s and skips a sensor whose interval has not quite passed (the last tick
    started a moment after its loop did), so 10 gave ticks 10 or 15 s apart, 12.2 s on average."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=9,
        description="Declarative automation of the daily graph: dbt, features, online store, batch "
        "predictions, drift and performance reports follow each landed day.",
    )
