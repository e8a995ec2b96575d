"""One run from a landed day to its drift report, when that is safe.

A day's freshness (files landed to drift report) paid two run starts and two sensor waits: the landing
sensor's run ingested the raw tables, then the automation sensor's next tick started a second run for dbt,
the features, the online store, the batch predictions and the reports. When a tick lands exactly one day,
with every daily table, and nothing else is queued or running, the landing run also takes the automated
daily assets downstream of those tables, for that day. The guarantees do not change:

- a raw asset's failed blocking check skips every step downstream of it in the same run, as it stops the
  automation condition (`lib/automation.upstream_checks_passed`);
- those partitions are then materialized after their inputs, which the automation conditions count as
  handled (`since_last_handled`), so the automation sensor does not run them again; what else the day
  changes (the later days whose features look back on it) it still runs;
- an asset runs only where automation would run it: every input outside the run already materialized (a
  home with no champion yet ingests only), nothing in progress.

Otherwise (a backlog, a table without its partner, a reference file, another run queued or running) the
landing run ingests only and automation does the rest, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg

from mlops_assets.ingestion.contracts import DAILY_TABLES

BUSY = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
DAILY_RAW = [dg.AssetKey(["raw", table]) for table in DAILY_TABLES]


def automated_downstream(asset_graph, roots: Sequence[dg.AssetKey]) -> list[dg.AssetKey]:
    """The assets automation would run after `roots`: downstream of them through assets that have an
    automation condition and the roots' partitions, in topological order."""
    partitions = asset_graph.get(roots[0]).partitions_def
    found: set[dg.AssetKey] = set()
    frontier = list(roots)
    while frontier:
        for child in asset_graph.get(frontier.pop()).child_keys:
            node = asset_graph.get(child)
            if child in found or node.automation_condition is None or node.partitions_def != partitions:
                continue
            found.add(child)
            frontier.append(child)
    return [key for key in asset_graph.toposorted_asset_keys if key in found]


def missing_inputs(
    asset_graph, instance: dg.DagsterInstance, selection: Iterable[dg.AssetKey], day: str
) -> list[str]:
    """Inputs of the selection that the run would not make and that are not materialized (for `day`)."""
    selected = set(selection)
    missing = []
    for key in selected:
        for parent in asset_graph.get(key).parent_keys - selected:
            if asset_graph.get(parent).partitions_def is None:
                present = instance.get_latest_materialization_event(parent) is not None
            else:
                present = day in instance.get_materialized_partitions(parent)
            if not present:
                missing.append(parent.to_user_string())
    return sorted(set(missing))


def chained_request(
    context: dg.SensorEvaluationContext, requests: list[dg.RunRequest]
) -> tuple[list[dg.RunRequest], str]:
    """`requests` with the landing run of a lone complete day extended to its daily graph, when safe;
    and why (logged by the sensor)."""
    if len(requests) != 1 or requests[0].partition_key is None:
        return requests, "ingestion only: the tick lands more than one day or a reference file"
    request = requests[0]
    if set(DAILY_RAW) - set(request.asset_selection):
        return requests, "ingestion only: not every daily table of the day landed in this tick"
    if context.repository_def is None:  # a sensor evaluated outside its code location (a unit test)
        return requests, "ingestion only: no asset graph to follow"
    instance = context.instance
    busy = instance.get_run_records(dg.RunsFilter(statuses=BUSY), limit=1)
    if busy:
        return requests, f"ingestion only: run {busy[0].dagster_run.run_id} is queued or in progress"
    asset_graph = context.repository_def.asset_graph
    chain = automated_downstream(asset_graph, DAILY_RAW)
    missing = missing_inputs(asset_graph, instance, [*request.asset_selection, *chain], request.partition_key)
    if missing:
        return requests, f"ingestion only: not materialized yet: {', '.join(missing)}"
    chained = dg.RunRequest(
        run_key=request.run_key,
        asset_selection=[*request.asset_selection, *chain],
        partition_key=request.partition_key,
        tags=request.tags,
    )
    names = ", ".join(key.to_user_string() for key in chain)
    return [chained], f"one run for {request.partition_key}: ingestion, then {names}"
