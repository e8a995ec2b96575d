"""The boosted champion's scoring: scikit-learn's `predict_proba` against its trees as arrays.

    .venv/bin/python bench/trees_bench.py --home /tmp/demo_home [--repeats 500]

Loads the home's `champion` (a boosted model: the default family) as the service does, then scores random
flights of its own vocabularies (1, 16 and 100 at a time) three ways, turn by turn in one process, with a
pause between calls as a service has between requests (`--gap-ms`): scikit-learn as it comes (its OpenMP
threads), scikit-learn on one OpenMP thread, and the trees as arrays. It prints the median milliseconds
of each and the largest difference in probability. The service takes the arrays for up to 16 flights and
scikit-learn on one thread beyond (mlops_assets/serving/trees.py, serving/champion.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def median_ms(score, arrays, repeats: int, gap_s: float) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        score(*arrays)
        seconds.append(time.perf_counter() - started)
        time.sleep(gap_s)
    return statistics.median(seconds) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="MLOPS_HOME whose champion is boosted trees")
    parser.add_argument("--repeats", type=int, default=90)
    parser.add_argument("--gap-ms", type=float, default=100.0, help="pause between calls (10 requests/s)")
    args = parser.parse_args()

    import mlflow
    import numpy as np

    from mlops_assets.serving.champion import _compiled_trees, _one_openmp_thread

    mlflow.set_tracking_uri(f"sqlite:///{args.home.resolve() / 'mlflow' / 'mlflow.db'}")
    bundle = mlflow.pyfunc.load_model("models:/flight_delay@champion").unwrap_python_model().bundle
    if not hasattr(bundle, "trees"):
        raise SystemExit("the champion is not a boosted model")
    prep = bundle.preprocessor
    started = time.perf_counter()
    compiled = _compiled_trees(bundle, prep)
    if compiled is None:
        raise SystemExit("the trees did not compile (see the warning above)")
    print(f"{bundle.trees.n_iter_} trees compiled and checked in {time.perf_counter() - started:.2f} s")
    one_thread = _one_openmp_thread(bundle.predict_arrays)
    generator = np.random.default_rng(0)
    gap = args.gap_ms / 1e3
    print(f"{'flights':>8}{'scikit-learn ms':>17}{'one thread ms':>15}{'arrays ms':>11}", end="")
    print(f"{'max difference':>16}")
    for rows in (1, 16, 100):
        codes = np.stack([generator.integers(0, c, rows) for c in prep.cardinalities], 1).astype(np.int64)
        numbers = generator.normal(size=(rows, prep.numeric_width)).astype(np.float32)
        arrays = (codes, numbers)
        ways = {"sklearn": bundle.predict_arrays, "one thread": one_thread, "arrays": compiled}
        turns: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(3):  # turns, so drifting load falls on each alike
            for name, score in ways.items():
                turns[name].append(median_ms(score, arrays, args.repeats // 3, gap))
        ms = {name: statistics.median(values) for name, values in turns.items()}
        difference = float(np.abs(compiled(*arrays) - bundle.predict_arrays(*arrays)).max())
        figures = f"{ms['sklearn']:>17.3f}{ms['one thread']:>15.3f}{ms['arrays']:>11.3f}"
        print(f"{rows:>8}{figures}{difference:>16.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
