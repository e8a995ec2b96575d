"""One delivery of a raw table: read, validate, stage, check, then commit or refuse.

A backfill of many days runs as one run (single-run backfill policy) and validates all its files in
one vectorized pass, then runs the Great Expectations suite once on everything it would store.

Stage, check, commit (see staging.py): accepted rows and quarantined rows are staged; only when the
blocking checks pass and no partition would shrink past the guard are they committed, one atomic
rename or copy per object. A refused delivery changes nothing that readers see: the previous Parquet,
its materialization (still the latest) and its quarantined rows stay; the refused delivery's
quarantined rows and reason go under quarantine/<table>/refused/<partition>/<version>/. A run commits
all its partitions or none of them.
"""

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import dagster as dg

from mlops_assets.ingestion.contracts import TableContract
from mlops_assets.ingestion.layout import lake_key, landing_key
from mlops_assets.resources.storage import ObjectStore, StoredObject

if TYPE_CHECKING:
    import pandas as pd

GX_CHECK = "great_expectations_suite"
QUARANTINE_CHECK = "quarantine_rate"
PER_PARTITION_TABLE_LIMIT = 62
SHRINK_HINT = (
    " If the shrink is meant (a correction upstream), rerun with allow_shrink: true in the asset's run "
    "config (docs/ingestion.md)."
)


class DeliveryLimits(Protocol):
    """The limits a delivery is held to: the raw assets' run config (IngestConfig) has them."""

    max_quarantine_fraction: float
    max_shrink_fraction: float
    allow_shrink: bool


@dataclass
class Delivery:
    """One landed file of the run and what it yields: the rows to store and the rows to quarantine."""

    partition: str | None
    landed: StoredObject
    source: str
    accepted: "pd.DataFrame"  # without _partition
    quarantined: "pd.DataFrame"
    trailing_blank_lines: int = 0
    stored_rows: int | None = None  # rows the partition holds now; None: never accepted

    @property
    def label(self) -> str:
        return self.partition or "reference"

    @property
    def rows_in(self) -> int:
        return len(self.accepted) + len(self.quarantined)


@dataclass
class Ingested:
    deliveries: list[Delivery]
    accepted: "pd.DataFrame"  # every delivery's accepted rows, with _partition (what GX validates)
    quarantined: "pd.DataFrame"

    @property
    def rows_in(self) -> int:
        return len(self.accepted) + len(self.quarantined)


def ingest(
    contract: TableContract,
    partitions: list[str | None],
    landing_zone: ObjectStore,
    lake: ObjectStore,
    log,
    reference_sets: dict[str, frozenset[str]] | None = None,
) -> Ingested:
    """Read and validate the given partitions' landed files; nothing is written to raw/ here."""
    from mlops_assets.ingestion.rules import PARTITION_COLUMN, validate_rows

    read = [_read(contract, p, landing_zone, lake, log) for p in partitions]
    unreadable = [r for r in read if isinstance(r, str)]
    if unreadable:
        raise dg.Failure(
            description=f"{len(unreadable)} landed file(s) could not be read and were quarantined "
            "whole; nothing of this run was stored, every partition keeps its previous data:\n"
            + "\n".join(unreadable),
            metadata={"unreadable_files": unreadable},
        )
    batches = [
        (raw, dt.date.fromisoformat(p) if p else None) for p, (_, raw) in zip(partitions, read, strict=True)
    ]
    validated = validate_rows(batches, contract, reference_sets)
    accepted, quarantined = validated.accepted, validated.quarantined
    accepted_by_day = _split_by_partition(
        accepted.drop(columns=[PARTITION_COLUMN]), accepted[PARTITION_COLUMN]
    )
    rejected_by_day = _split_by_partition(quarantined, quarantined[PARTITION_COLUMN])
    empty_accepted = accepted.iloc[0:0].drop(columns=[PARTITION_COLUMN])
    deliveries = [
        Delivery(
            partition=partition,
            landed=landed,
            source=raw.source,
            accepted=accepted_by_day.get(partition, empty_accepted),
            quarantined=rejected_by_day.get(partition, quarantined.iloc[0:0]),
            trailing_blank_lines=raw.trailing_blank_lines,
        )
        for partition, (landed, raw) in zip(partitions, read, strict=True)
    ]
    for reason in quarantined["_reason"].head(20):
        log.warning(f"quarantined row: {reason}")
    return Ingested(deliveries=deliveries, accepted=accepted, quarantined=quarantined)


def _read(contract: TableContract, partition: str | None, landing_zone: ObjectStore, lake: ObjectStore, log):
    """(landed object, RawTable), or the message of a file refused whole (already quarantined)."""
    from mlops_assets.ingestion.parsing import UnreadableFile, read_landed_csv
    from mlops_assets.ingestion.quarantine import quarantine_file, quarantine_reference

    key = landing_key(contract.name, partition)
    try:
        landed = landing_zone.head(key)
    except FileNotFoundError:
        raise dg.Failure(
            description=f"no landed file {landing_zone.uri(key)} for partition {partition or '(none)'}; "
            "replay or deliver it first (see `mlops replay --help`)",
        ) from None
    if landed.refused:
        where = quarantine_reference(lake, contract.name, partition or "reference", landed)
        message = f"{landing_zone.uri(key)}: refused, not read: {landed.refused}"
        log.error(f"{message} (reason: {where})")
        return message
    data = landing_zone.read_bytes(key)
    try:
        return landed, read_landed_csv(data, landing_zone.uri(key), contract)
    except UnreadableFile as error:
        where = quarantine_file(lake, contract.name, partition or "reference", landed, data, error)
        log.error(f"quarantined whole file: {error} (reason: {where})")
        return str(error)


def _split_by_partition(frame, keys) -> dict:
    """Rows by partition key in one pass (None: a reference table, all rows under one key)."""
    if keys.isna().all():
        return {None: frame.reset_index(drop=True)}
    return {key: rows.reset_index(drop=True) for key, rows in frame.groupby(keys.to_numpy(), sort=False)}


def _check_results(
    contract: TableContract,
    ingested: Ingested,
    lake: ObjectStore,
    reference_sets: dict[str, frozenset[str]],
    max_fraction: float,
) -> list[dg.AssetCheckResult]:
    from mlops_assets.ingestion.gx_suite import run_suite

    suite = run_suite(ingested.accepted, contract, reference_sets)
    rows_in, quarantined = ingested.rows_in, len(ingested.quarantined)
    fraction = quarantined / rows_in if rows_in else 0.0
    return [
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
            description=f"{quarantined} of {rows_in} rows quarantined ({fraction:.2%}; "
            f"limit {max_fraction:.2%})",
            metadata={
                "quarantined_fraction": fraction,
                "limit": max_fraction,
                "quarantine": lake.uri(f"quarantine/{contract.name}/rows/"),
            },
        ),
    ]


def stored_row_count(lake: ObjectStore, key: str) -> int | None:
    """Rows of the committed Parquet file at key (from its footer), None when there is none."""
    import pyarrow.parquet as pq

    if not lake.exists(key):
        return None
    return pq.ParquetFile(io.BytesIO(lake.read_bytes(key))).metadata.num_rows


def shrink_refusals(deliveries: list[Delivery], config: DeliveryLimits) -> list[str]:
    """Why each delivery that would shrink its accepted partition too far is refused."""
    if config.allow_shrink:
        return []
    refused = []
    for delivery in deliveries:
        before, after = delivery.stored_rows, len(delivery.accepted)
        if not before or after >= before:
            continue  # a first delivery, an empty partition, or no shrink
        shrink = (before - after) / before
        if after == 0 or shrink > config.max_shrink_fraction:
            refused.append(
                f"{delivery.label}: the re-delivery would shrink the partition from {before} to {after} "
                f"accepted rows ({shrink:.0%}; limit {config.max_shrink_fraction:.0%}"
                f"{', and never to zero' if after == 0 else ''})"
            )
    return refused


def _stage(ingested: Ingested, contract: TableContract, staging) -> None:
    from mlops_assets.ingestion.quarantine import rows_key

    for delivery in ingested.deliveries:
        staging.write_parquet(lake_key(contract.name, delivery.partition), delivery.accepted)
        # Staged even when empty, so a corrected re-delivery replaces the rows quarantined before.
        staging.write_parquet(rows_key(contract.name, delivery.label), delivery.quarantined)


def _refuse(
    contract: TableContract,
    ingested: Ingested,
    staging,
    lake: ObjectStore,
    checks: list[dg.AssetCheckResult],
    reasons: list[str],
    shrinks: bool,
) -> dg.Failure:
    """Keep the refused delivery's quarantine under refused/, drop the rest of the staging. `shrinks`:
    a reason is the shrink guard (the message then says how to allow it)."""
    from mlops_assets.ingestion.quarantine import refused_folder, rows_key, write_refusal

    kept = {}
    for delivery in ingested.deliveries:
        folder = refused_folder(contract.name, delivery.label, delivery.landed.version)
        staging.commit(rows_key(contract.name, delivery.label), to=f"{folder}/rows.parquet")
        kept[delivery.label] = write_refusal(
            lake,
            folder,
            {
                "table": contract.name,
                "partition": delivery.label,
                "landed_file": delivery.source,
                "landed_version": delivery.landed.version,
                "reasons": reasons,
                "rows_in": delivery.rows_in,
                "rows_accepted": len(delivery.accepted),
                "rows_quarantined": len(delivery.quarantined),
                "rows_stored_before": delivery.stored_rows,
                "checks": [
                    {"check": c.check_name, "passed": c.passed, "description": c.description} for c in checks
                ],
            },
        )
    staging.discard()
    labels = [d.label for d in ingested.deliveries]
    span = labels[0] if len(labels) == 1 else f"{labels[0]}..{labels[-1]} ({len(labels)} partitions)"
    return dg.Failure(
        description=f"refused the delivery of {contract.name} {span}: " + "; ".join(reasons) + ". "
        "Nothing was replaced: the previous data of every partition of this run stays as it was, with "
        "its metadata and its quarantined rows. The refused delivery's quarantined rows and reason are "
        f"kept under {lake.uri(f'quarantine/{contract.name}/refused/')}." + (SHRINK_HINT if shrinks else ""),
        metadata={
            "reasons": dg.MetadataValue.json(reasons),
            "refused_quarantine": dg.MetadataValue.json(kept),
            "rows_in": ingested.rows_in,
            "rows_quarantined": len(ingested.quarantined),
        },
    )


def _partition_metadata(contract: TableContract, delivery: Delivery, lake: ObjectStore) -> dict[str, object]:
    from mlops_assets.ingestion.quarantine import rows_key

    metadata: dict[str, object] = {
        "rows_in": delivery.rows_in,
        "rows_accepted": len(delivery.accepted),
        "rows_quarantined": len(delivery.quarantined),
        "dagster/row_count": len(delivery.accepted),
        "stored_at": lake.uri(lake_key(contract.name, delivery.partition)),
        "quarantine": lake.uri(rows_key(contract.name, delivery.label)),
        "landed_file": delivery.source,
        "landed_version": delivery.landed.version,
    }
    if delivery.stored_rows is not None:
        metadata["rows_stored_before"] = delivery.stored_rows
    if delivery.trailing_blank_lines:
        metadata["trailing_blank_lines"] = delivery.trailing_blank_lines
    if len(delivery.quarantined):
        metadata["quarantined_preview"] = dg.MetadataValue.md(
            delivery.quarantined[["_source_file", "_source_line", "_reason"]]
            .head(10)
            .to_markdown(index=False)
        )
    return metadata


def _run_metadata(contract: TableContract, ingested: Ingested) -> dict[str, object]:
    from mlops_assets.ingestion.metadata import describe_frame
    from mlops_assets.ingestion.rules import PARTITION_COLUMN

    rows = [
        {"partition": d.label, "accepted": len(d.accepted), "quarantined": len(d.quarantined)}
        for d in ingested.deliveries
    ]
    metadata = {
        "partitions": len(rows),
        "run_rows_in": ingested.rows_in,
        "run_rows_quarantined": len(ingested.quarantined),
        **describe_frame(ingested.accepted.drop(columns=[PARTITION_COLUMN]), contract),
    }
    if len(rows) <= PER_PARTITION_TABLE_LIMIT:
        metadata["per_partition"] = dg.MetadataValue.md(_per_partition_table(rows))
    return metadata


def _per_partition_table(rows: list[dict[str, object]]) -> str:
    lines = ["| partition | accepted | quarantined |", "| --- | ---: | ---: |"]
    lines += [f"| {r['partition']} | {r['accepted']} | {r['quarantined']} |" for r in rows]
    return "\n".join(lines)


def deliver(
    context: dg.AssetExecutionContext,
    contract: TableContract,
    partitions: list[str | None],
    config: DeliveryLimits,
    landing_zone: ObjectStore,
    lake: ObjectStore,
    references: dict[str, frozenset[str]],
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:
    """Read, validate, stage, check; then commit and materialize, or refuse and keep the old data."""
    from mlops_assets.ingestion.staging import Staging, remove_abandoned_staging

    run_id = context.run.run_id
    removed = remove_abandoned_staging(lake, context.instance, run_id)
    if removed:
        context.log.info(f"removed {removed} staged object(s) left by runs that are no longer running")
    ingested = ingest(contract, partitions, landing_zone, lake, context.log, references)
    for delivery in ingested.deliveries:
        delivery.stored_rows = stored_row_count(lake, lake_key(contract.name, delivery.partition))
    staging = Staging(lake, run_id)
    try:
        _stage(ingested, contract, staging)
        checks = _check_results(contract, ingested, lake, references, config.max_quarantine_fraction)
    except Exception:
        staging.discard()
        raise
    shrinks = shrink_refusals(ingested.deliveries, config)
    reasons = [f"blocking check {c.check_name} failed: {c.description}" for c in checks if not c.passed]
    if reasons or shrinks:
        failure = _refuse(contract, ingested, staging, lake, checks, [*reasons, *shrinks], bool(shrinks))
        yield from checks  # recorded on the asset, as evaluated on the refused delivery
        raise failure
    # The data first: a process killed between two renames leaves a partition with its new rows and
    # the old quarantine record, never the reverse (the stored data is what readers act on).
    staging.commit_all(order=lambda key: (not key.startswith("raw/"), key))
    partitioned = partitions[0] is not None
    metadata = _run_metadata(contract, ingested)
    for delivery in ingested.deliveries:
        figures = _partition_metadata(contract, delivery, lake)
        if partitioned:
            context.add_asset_metadata(figures, partition_key=delivery.partition)
        else:
            metadata.update(figures)
    yield dg.MaterializeResult(metadata=metadata, check_results=checks)


def carrier_set(lake: ObjectStore) -> frozenset[str]:
    key = lake_key("airlines", None)
    if not lake.exists(key):
        raise dg.Failure(
            description=f"{lake.uri(key)} is missing: materialize raw/airlines before raw/flights"
        )
    return frozenset(lake.read_parquet(key)["carrier"].dropna().astype(str))


def reference_sets_of(contract: TableContract, lake: ObjectStore) -> dict[str, frozenset[str]]:
    return {"carriers": carrier_set(lake)} if "carriers" in contract.references else {}
