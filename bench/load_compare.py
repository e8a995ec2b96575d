"""Side by side: how long two checkouts take to load the code location, in fresh processes, interleaved.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/load_compare.py --before /tmp/before --repeats 15

Each turn loads this checkout's `mlops_assets.definitions` and the other one's (bench/_load_child.py of
this checkout, run with the other checkout first on sys.path), alternating which goes first, so drifting
background load falls on both alike. Prints the median load time of each, their ratio and the heavy
libraries either one imported. Both use this checkout's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CHILD = HERE / "bench" / "_load_child.py"


def load_once(checkout: Path, warm: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout), "MLOPS_HOME": str(checkout / "data")}
    completed = subprocess.run(
        [sys.executable, str(CHILD), "defs"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    if report.get("dbt_manifest_rewritten") and not warm:
        raise SystemExit(f"{checkout}: the dbt manifest was rebuilt during a load; run once more to warm it")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="another checkout (a git worktree)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    checkouts = {"before": args.before.resolve(), "after": HERE}
    for checkout in checkouts.values():  # a first load may parse the dbt project; it is not measured
        load_once(checkout, warm=True)
        load_once(checkout, warm=True)
    seconds: dict[str, list[float]] = {name: [] for name in checkouts}
    heavy: dict[str, set[str]] = {name: set() for name in checkouts}
    for turn in range(args.repeats):
        order = list(checkouts) if turn % 2 == 0 else list(reversed(checkouts))
        for name in order:
            report = load_once(checkouts[name])
            seconds[name].append(report["seconds"])
            heavy[name].update(report["heavy_modules"])
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{'checkout':<8} {'median s':>9} {'min s':>7} {'max s':>7}  heavy libraries imported")
    for name, values in seconds.items():
        imported = ", ".join(sorted(heavy[name])) or "none"
        print(f"{name:<8} {medians[name]:>9.3f} {min(values):>7.3f} {max(values):>7.3f}  {imported}")
    print(
        f"after / before: {medians['after'] / medians['before']:.2f}x over {args.repeats} interleaved turns"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
