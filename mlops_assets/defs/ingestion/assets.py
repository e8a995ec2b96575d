"""Raw assets: landed CSV files, validated against their contract, stored as Parquet in the lake.

Where the files lie is in ingestion/layout.py; how a delivery is read, validated, staged, checked and
then committed or refused is in ingestion/delivery.py. This module holds what Dagster loads: the run
config, the blocking checks and the asset of each table.
"""

from collections.abc import Iterable

import dagster as dg
from pydantic import Field

from mlops_assets.ingestion.contracts import DAILY_TABLES, REFERENCE_TABLES, TableContract
from mlops_assets.ingestion.delivery import GX_CHECK, QUARANTINE_CHECK, deliver, reference_sets_of
from mlops_assets.lib.calendar import daily_partitions
from mlops_assets.lib.keys import DATA_OWNERS
from mlops_assets.resources.storage import ObjectStore

OWNERS = DATA_OWNERS


class IngestConfig(dg.Config):
    max_quarantine_fraction: float = Field(
        default=0.02,
        description="Above this share of quarantined rows the feed is considered broken: the blocking "
        "check fails and the delivery is refused (the partition keeps its previous data).",
    )
    max_shrink_fraction: float = Field(
        default=0.5,
        description="A re-delivery that would leave an accepted partition with fewer rows than it holds "
        "by more than this fraction (or with none) is refused, unless allow_shrink is set.",
    )
    allow_shrink: bool = Field(
        default=False,
        description="Accept a re-delivery that shrinks a partition past max_shrink_fraction, or empties "
        "it: for a correction made on purpose.",
    )


def _check_specs(key: dg.AssetKey, contract: TableContract) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            GX_CHECK,
            asset=key,
            blocking=True,
            description=f"The Great Expectations suite of the {contract.name} contract (schema, dtypes, "
            "required keys, ranges, known sets, uniqueness, partition day) on the rows to be stored.",
        ),
        dg.AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=key,
            blocking=True,
            description="The share of quarantined rows stays under the configured limit.",
        ),
    ]


def build_daily_asset(contract: TableContract) -> dg.AssetsDefinition:
    key = dg.AssetKey(["raw", contract.name])
    deps = [dg.AssetKey(["raw", "airlines"])] if "carriers" in contract.references else []

    @dg.asset(
        key=key,
        description=f"{contract.description} Validated against the {contract.name} contract; rows that "
        "fail a rule are quarantined with their reason, unreadable files are quarantined whole. A "
        "delivery replaces a partition only once its blocking checks pass.",
        group_name="ingestion",
        owners=OWNERS,
        kinds={"pandas", "great_expectations", "parquet"},
        partitions_def=daily_partitions(),
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=deps,
        check_specs=_check_specs(key, contract),
        tags={"layer": "raw"},
    )
    def _daily(
        context: dg.AssetExecutionContext, config: IngestConfig, landing_zone: ObjectStore, lake: ObjectStore
    ):
        partitions: list[str | None] = list(context.partition_keys)
        references = reference_sets_of(contract, lake)
        context.log.info(
            f"ingesting {len(partitions)} partition(s) of {contract.name}: {partitions[0]}..{partitions[-1]}"
        )
        yield from deliver(context, contract, partitions, config, landing_zone, lake, references)

    return _daily


def build_reference_asset(contract: TableContract) -> dg.AssetsDefinition:
    key = dg.AssetKey(["raw", contract.name])

    @dg.asset(
        key=key,
        description=f"{contract.description} Reference table, replaced whole on each delivery that "
        "passes its blocking checks.",
        group_name="ingestion",
        owners=OWNERS,
        kinds={"pandas", "great_expectations", "parquet"},
        check_specs=_check_specs(key, contract),
        tags={"layer": "raw"},
    )
    def _reference(
        context: dg.AssetExecutionContext, config: IngestConfig, landing_zone: ObjectStore, lake: ObjectStore
    ):
        yield from deliver(context, contract, [None], config, landing_zone, lake, {})

    return _reference


def build_raw_assets() -> Iterable[dg.AssetsDefinition]:
    yield from (build_reference_asset(c) for c in REFERENCE_TABLES.values())
    yield from (build_daily_asset(c) for c in DAILY_TABLES.values())
