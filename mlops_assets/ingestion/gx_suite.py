"""The Great Expectations 1.x suite of a table contract, and running it on a stored frame.

GX is imported inside these functions (about 4 s): loading the code location never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mlops_assets.ingestion.contracts import TableContract
from mlops_assets.ingestion.rules import PARTITION_COLUMN, calendar_dates
from mlops_assets.lib.calendar import LOCAL_TZ_NAME

# The element types GX observes for each contract dtype of our stored frames.
GX_TYPES = {"int": "int64", "float": "float64", "str": "str", "timestamp": "Timestamp"}
LOCAL_DATE = "_local_date"
CALENDAR_DATE = "_calendar_date"


@dataclass(frozen=True)
class SuiteOutcome:
    success: bool
    evaluated: int
    failed: list[dict[str, object]]  # one entry per failed expectation
    rows: int

    @property
    def summary(self) -> str:
        if self.success:
            return f"all {self.evaluated} expectations passed on {self.rows} rows"
        names = ", ".join(f"{f['expectation']}({f['column']})" for f in self.failed)
        return f"{len(self.failed)} of {self.evaluated} expectations failed on {self.rows} rows: {names}"


def build_suite(contract: TableContract, reference_sets: dict[str, frozenset[str]], partitioned: bool):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"raw_{contract.name}")
    ordered = list(contract.column_names) + (
        [PARTITION_COLUMN, *witness_columns(contract)] if partitioned else []
    )
    suite.add_expectation(gxe.ExpectTableColumnsToMatchOrderedList(column_list=ordered))
    for column in contract.columns:
        name = column.name
        suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column=name, type_=GX_TYPES[column.dtype]))
        if column.required:
            suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=name))
        if column.min is not None or column.max is not None:
            suite.add_expectation(
                gxe.ExpectColumnValuesToBeBetween(column=name, min_value=column.min, max_value=column.max)
            )
        allowed = reference_sets[column.allowed_from] if column.allowed_from else column.allowed
        if allowed is not None:
            suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=sorted(allowed)))
        if column.pattern is not None:
            suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=column.pattern))
    if len(contract.unique_key) == 1:
        suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column=contract.unique_key[0]))
    else:
        suite.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(contract.unique_key)))
    if partitioned and contract.partition_date_columns:
        # Every row lies inside the day of the partition it is stored under, by its calendar columns
        # and by its UTC timestamp seen in New York.
        suite.add_expectation(
            gxe.ExpectColumnPairValuesToBeEqual(column_A=PARTITION_COLUMN, column_B=CALENDAR_DATE)
        )
        if contract.partition_timestamp:
            suite.add_expectation(
                gxe.ExpectColumnPairValuesToBeEqual(column_A=PARTITION_COLUMN, column_B=LOCAL_DATE)
            )
    return suite


def witness_columns(contract: TableContract) -> list[str]:
    if not contract.partition_date_columns:
        return []
    return [CALENDAR_DATE] + ([LOCAL_DATE] if contract.partition_timestamp else [])


def with_partition_witnesses(frame: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    """Add the dates the partition expectations compare (derived from the row, never from its key)."""
    out = frame.copy()
    calendar = calendar_dates(frame, contract)
    out[CALENDAR_DATE] = calendar.dt.strftime("%Y-%m-%d").astype("string")
    if contract.partition_timestamp:
        local = frame[contract.partition_timestamp].dt.tz_convert(LOCAL_TZ_NAME)
        out[LOCAL_DATE] = local.dt.strftime("%Y-%m-%d").astype("string")
    return out


def run_suite(
    frame: pd.DataFrame, contract: TableContract, reference_sets: dict[str, frozenset[str]]
) -> SuiteOutcome:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    partitioned = PARTITION_COLUMN in frame.columns and contract.partition_date_columns is not None
    data = (
        with_partition_witnesses(frame, contract)
        if partitioned
        else frame.drop(columns=[PARTITION_COLUMN], errors="ignore")
    )
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas(f"raw_{contract.name}")
    batch_definition = source.add_dataframe_asset(contract.name).add_batch_definition_whole_dataframe(
        "stored"
    )
    suite = context.suites.add(build_suite(contract, reference_sets, partitioned))
    result = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"raw_{contract.name}_stored", data=batch_definition, suite=suite)
    ).run(batch_parameters={"dataframe": data}, result_format="SUMMARY")
    failed = []
    for item in result.results:
        if item.success:
            continue
        kwargs = item.expectation_config.kwargs
        failed.append(
            {
                "expectation": item.expectation_config.type,
                "column": kwargs.get("column") or kwargs.get("column_list") or kwargs.get("column_A"),
                "unexpected_count": item.result.get("unexpected_count"),
                "observed": str(item.result.get("observed_value", ""))[:200],
                "examples": [str(v) for v in (item.result.get("partial_unexpected_list") or [])[:5]],
            }
        )
    return SuiteOutcome(
        success=bool(result.success), evaluated=len(result.results), failed=failed, rows=len(frame)
    )
