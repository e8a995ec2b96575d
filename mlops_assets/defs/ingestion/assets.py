"""Raw assets: landed CSV files, validated against their contract, stored as Parquet in the lake.

Daily tables (`raw/flights`, `raw/weather`) take one file per partition, `<table>/<YYYY-MM-DD>.csv`;
reference tables (`raw/airlines`, `raw/airports`, `raw/planes`) take `reference/<table>.csv`.
A backfill of many days runs as one run (single-run backfill policy) and validates all its files in
one vectorized pass, then runs the Great Expectations suite once on everything it stored.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg
from pydantic import Field

from mlops_assets.defs.ingestion.contracts import DAILY_TABLES, REFERENCE_TABLES, TableContract
from mlops_assets.lib.calendar import daily_partitions
from mlops_assets.lib.storage import ObjectStore

OWNER = "team:data-platform"
GX_CHECK = "great_expectations_suite"
QUARANTINE_CHECK = "quarantine_rate"


class IngestConfig(dg.Config):
    max_quarantine_fraction: float = Field(
        default=0.02,
        description="Above this share of quarantined rows the feed is considered broken and the "
        "blocking check fails, so nothing downstream consumes the partition.",
    )


def landing_key(table: str, partition: str | None) -> str:
    return f"reference/{table}.csv" if partition is None else f"{table}/{partition}.csv"


def lake_key(table: str, partition: str | None) -> str:
    return f"raw/{table}.parquet" if partition is None else f"raw/{table}/{partition}.parquet"


@dataclass
class IngestOutcome:
    rows_in: int = 0
    rows_accepted: int = 0
    rows_quarantined: int = 0
    per_partition: list[dict[str, object]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def ingest(
    contract: TableContract,
    partitions: list[str | None],
    landing_zone: ObjectStore,
    lake: ObjectStore,
    log,
    reference_sets: dict[str, frozenset[str]] | None = None,
):
    """Read, validate and store the given partitions; returns (outcome, accepted frame)."""
    from mlops_assets.defs.ingestion.parsing import UnreadableFile, read_landed_csv
    from mlops_assets.defs.ingestion.quarantine import quarantine_file, write_quarantined_rows
    from mlops_assets.defs.ingestion.rules import PARTITION_COLUMN, validate_rows

    outcome = IngestOutcome()
    batches = []
    for partition in partitions:
        key = landing_key(contract.name, partition)
        try:
            landed = landing_zone.head(key)
        except FileNotFoundError:
            raise dg.Failure(
                description=f"no landed file {landing_zone.uri(key)} for partition {partition or '(none)'}; "
                "replay or deliver it first (see `mlops replay --help`)",
            ) from None
        data = landing_zone.read_bytes(key)
        try:
            raw = read_landed_csv(data, landing_zone.uri(key), contract)
        except UnreadableFile as error:
            where = quarantine_file(lake, contract.name, partition or "reference", landed, data, error)
            log.error(f"quarantined whole file: {error} (reason: {where})")
            outcome.unreadable.append(str(error))
            continue
        day = dt.date.fromisoformat(partition) if partition else None
        batches.append((raw, day))
    if outcome.unreadable:
        raise dg.Failure(
            description=f"{len(outcome.unreadable)} landed file(s) could not be read and were quarantined "
            "whole; "
            "nothing of this run was stored:\n" + "\n".join(outcome.unreadable),
            metadata={"unreadable_files": outcome.unreadable},
        )
    validated = validate_rows(batches, contract, reference_sets)
    accepted, quarantined = validated.accepted, validated.quarantined
    accepted_by_day = _split_by_partition(
        accepted.drop(columns=[PARTITION_COLUMN]), accepted[PARTITION_COLUMN]
    )
    rejected_by_day = _split_by_partition(quarantined, quarantined[PARTITION_COLUMN])
    for partition in partitions:
        stored = accepted_by_day.get(partition, accepted.iloc[0:0].drop(columns=[PARTITION_COLUMN]))
        rejected = rejected_by_day.get(partition, quarantined.iloc[0:0])
        lake.write_parquet(lake_key(contract.name, partition), stored)
        write_quarantined_rows(lake, contract.name, partition or "reference", rejected)
        outcome.per_partition.append(
            {"partition": partition or "-", "accepted": len(stored), "quarantined": len(rejected)}
        )
    outcome.rows_accepted, outcome.rows_quarantined = len(accepted), len(quarantined)
    outcome.rows_in = validated.rows_in
    for reason in quarantined["_reason"].head(20):
        log.warning(f"quarantined row: {reason}")
    return outcome, accepted, quarantined


def _split_by_partition(frame, keys) -> dict:
    """Rows by partition key in one pass (None: a reference table, all rows under one key)."""
    if keys.isna().all():
        return {None: frame.reset_index(drop=True)}
    return {key: rows.reset_index(drop=True) for key, rows in frame.groupby(keys.to_numpy(), sort=False)}


def _checks_and_metadata(
    contract: TableContract,
    outcome: IngestOutcome,
    accepted,
    quarantined,
    lake: ObjectStore,
    reference_sets: dict[str, frozenset[str]],
    max_fraction: float,
) -> dg.MaterializeResult:
    from mlops_assets.defs.ingestion.gx_suite import run_suite
    from mlops_assets.defs.ingestion.metadata import describe_frame

    suite = run_suite(accepted, contract, reference_sets)
    fraction = outcome.rows_quarantined / outcome.rows_in if outcome.rows_in else 0.0
    first = outcome.per_partition[0]["partition"]
    quarantine_prefix = lake.uri(f"quarantine/{contract.name}/rows/")
    checks = [
        dg.AssetCheckResult(
            check_name=GX_CHECK,
            passed=suite.success,
            severity=dg.AssetCheckSeverity.ERROR,
            description=suite.summary,
            metadata={
                "expectations_evaluated": suite.evaluated,
                "expectations_failed": len(suite.failed),
                "failures": dg.MetadataValue.json(suite.failed),
                "rows_validated": suite.rows,
            },
        ),
        dg.AssetCheckResult(
            check_name=QUARANTINE_CHECK,
            passed=fraction <= max_fraction,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{outcome.rows_quarantined} of {outcome.rows_in} rows quarantined "
            f"({fraction:.2%}; limit {max_fraction:.2%})",
            metadata={
                "quarantined_fraction": fraction,
                "limit": max_fraction,
                "quarantine": quarantine_prefix,
            },
        ),
    ]
    metadata = {
        "rows_in": outcome.rows_in,
        "rows_accepted": outcome.rows_accepted,
        "rows_quarantined": outcome.rows_quarantined,
        "dagster/row_count": outcome.rows_accepted,
        "partitions": len(outcome.per_partition),
        "stored_at": lake.uri(lake_key(contract.name, None if first == "-" else str(first))),
        "quarantine": quarantine_prefix,
        **describe_frame(accepted.drop(columns=["_partition"]), contract),
    }
    if quarantined is not None and len(quarantined):
        metadata["quarantined_preview"] = dg.MetadataValue.md(
            quarantined[["_source_file", "_source_line", "_reason"]].head(10).to_markdown(index=False)
        )
    if len(outcome.per_partition) <= 62:
        metadata["per_partition"] = dg.MetadataValue.md(_per_partition_table(outcome.per_partition))
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


def _per_partition_table(rows: list[dict[str, object]]) -> str:
    lines = ["| partition | accepted | quarantined |", "| --- | ---: | ---: |"]
    lines += [f"| {r['partition']} | {r['accepted']} | {r['quarantined']} |" for r in rows]
    return "\n".join(lines)


def _check_specs(key: dg.AssetKey, contract: TableContract) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            GX_CHECK,
            asset=key,
            blocking=True,
            description=f"The Great Expectations suite of the {contract.name} contract (schema, dtypes, "
            "required keys, ranges, known sets, uniqueness, partition day) on the stored rows.",
        ),
        dg.AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=key,
            blocking=True,
            description="The share of quarantined rows stays under the configured limit.",
        ),
    ]


def carrier_set(lake: ObjectStore) -> frozenset[str]:
    key = lake_key("airlines", None)
    if not lake.exists(key):
        raise dg.Failure(
            description=f"{lake.uri(key)} is missing: materialize raw/airlines before raw/flights"
        )
    return frozenset(lake.read_parquet(key)["carrier"].dropna().astype(str))


def _reference_sets(contract: TableContract, lake: ObjectStore) -> dict[str, frozenset[str]]:
    return {"carriers": carrier_set(lake)} if "carriers" in contract.references else {}


def build_daily_asset(contract: TableContract) -> dg.AssetsDefinition:
    key = dg.AssetKey(["raw", contract.name])
    deps = [dg.AssetKey(["raw", "airlines"])] if "carriers" in contract.references else []

    @dg.asset(
        key=key,
        description=f"{contract.description} Validated against the {contract.name} contract; rows that "
        "fail a rule are quarantined with their reason, unreadable files are quarantined whole.",
        group_name="ingestion",
        owners=[OWNER],
        kinds={"pandas", "great_expectations", "parquet"},
        partitions_def=daily_partitions(),
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=deps,
        check_specs=_check_specs(key, contract),
        tags={"layer": "raw"},
    )
    def _daily(
        context: dg.AssetExecutionContext, config: IngestConfig, landing_zone: ObjectStore, lake: ObjectStore
    ) -> dg.MaterializeResult:
        partitions: list[str | None] = list(context.partition_keys)
        references = _reference_sets(contract, lake)
        context.log.info(
            f"ingesting {len(partitions)} partition(s) of {contract.name}: {partitions[0]}..{partitions[-1]}"
        )
        outcome, accepted, quarantined = ingest(
            contract, partitions, landing_zone, lake, context.log, references
        )
        return _checks_and_metadata(
            contract, outcome, accepted, quarantined, lake, references, config.max_quarantine_fraction
        )

    return _daily


def build_reference_asset(contract: TableContract) -> dg.AssetsDefinition:
    key = dg.AssetKey(["raw", contract.name])

    @dg.asset(
        key=key,
        description=f"{contract.description} Reference table, replaced whole on each delivery.",
        group_name="ingestion",
        owners=[OWNER],
        kinds={"pandas", "great_expectations", "parquet"},
        check_specs=_check_specs(key, contract),
        tags={"layer": "raw"},
    )
    def _reference(
        context: dg.AssetExecutionContext, config: IngestConfig, landing_zone: ObjectStore, lake: ObjectStore
    ) -> dg.MaterializeResult:
        outcome, accepted, quarantined = ingest(contract, [None], landing_zone, lake, context.log)
        return _checks_and_metadata(
            contract, outcome, accepted, quarantined, lake, {}, config.max_quarantine_fraction
        )

    return _reference


def build_raw_assets() -> Iterable[dg.AssetsDefinition]:
    yield from (build_reference_asset(c) for c in REFERENCE_TABLES.values())
    yield from (build_daily_asset(c) for c in DAILY_TABLES.values())
