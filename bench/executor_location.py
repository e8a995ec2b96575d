"""The platform's definitions with Dagster's multiprocess executor (one process per step, production's
default), as a code location file for bench/executor_bench.py: `dagster asset materialize -f` this file."""

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    from mlops_assets.definitions import build_definitions

    platform = build_definitions()
    return dg.Definitions(
        assets=platform.assets,
        asset_checks=platform.asset_checks,
        resources=platform.resources,
        executor=dg.multiprocess_executor,
    )
