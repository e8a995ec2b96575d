"""What a person wants to see on a materialization: schema, null counts, a preview."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from mlops_assets.ingestion.contracts import PANDAS_DTYPES, TableContract


def table_schema(contract: TableContract) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=PANDAS_DTYPES[c.dtype],
                description=c.description or None,
                constraints=dg.TableColumnConstraints(nullable=not c.required, other=_constraints(c)),
            )
            for c in contract.columns
        ]
    )


def _constraints(column) -> list[str]:
    found = []
    if column.min is not None or column.max is not None:
        found.append(f"between {column.min} and {column.max}")
    if column.allowed:
        found.append("one of " + ", ".join(sorted(column.allowed)))
    if column.allowed_from:
        found.append(f"in the {column.allowed_from} reference set")
    if column.pattern:
        found.append(f"matches {column.pattern}")
    return found


def describe_frame(frame: pd.DataFrame, contract: TableContract) -> dict[str, object]:
    nulls = {c: int(n) for c, n in frame.isna().sum().items() if n}
    return {
        "dagster/column_schema": table_schema(contract),
        "null_counts": dg.MetadataValue.json(nulls),
        "preview": dg.MetadataValue.md(frame.head(10).to_markdown(index=False)),
    }
