"""Child process of the load benchmark: times one cold import (and `defs()` call) and prints JSON.

Run as a script in a fresh interpreter:

    python bench/_load_child.py baseline   # import dagster, dagster_dbt, dagster_aws
    python bench/_load_child.py defs       # import mlops_assets.definitions and call defs()

The last line of stdout is one JSON object. Only the standard library is imported before the clock
starts, so the figure is the cost a code server pays to load the location.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# Loading the location may run `dbt parse` when the manifest is missing or stale (see
# mlops_assets/transform/dbt_project.py): a load that did is reported, it is not a typical load.
MANIFEST = Path(__file__).resolve().parents[1] / "dbt" / "target" / "manifest.json"
HEAVY_MODULES = (
    "torch",
    "pyspark",
    "ray",
    "feast",
    "evidently",
    "mlflow",
    "great_expectations",
    "sklearn",
)


def load_baseline() -> dict[str, object]:
    started = time.perf_counter()
    import dagster  # noqa: F401
    import dagster_aws  # noqa: F401
    import dagster_dbt  # noqa: F401

    return {"seconds": time.perf_counter() - started}


def manifest_mtime() -> float | None:
    return MANIFEST.stat().st_mtime if MANIFEST.exists() else None


def load_definitions() -> dict[str, object]:
    manifest_before = manifest_mtime()
    started = time.perf_counter()
    import mlops_assets.definitions as location

    imported = time.perf_counter()
    definitions = location.defs()
    called = time.perf_counter()
    # Not part of the measured figure: what a code server does next (resolve and validate the graph).
    definitions.get_repository_def()
    resolved = time.perf_counter()
    return {
        "seconds": called - started,
        "import_seconds": imported - started,
        "call_seconds": called - imported,
        "resolve_seconds": resolved - called,
        "definitions_type": type(definitions).__name__,
        "dbt_manifest_rewritten": manifest_mtime() != manifest_before,
    }


def loaded_heavy_modules() -> list[str]:
    return [name for name in HEAVY_MODULES if name in sys.modules]


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "baseline":
        report: dict[str, object] = load_baseline()
    elif mode == "defs":
        report = load_definitions()
    else:
        print(f"usage: {argv[0]} baseline|defs", file=sys.stderr)
        return 2
    report["mode"] = mode
    report["heavy_modules"] = loaded_heavy_modules()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
