"""The engines of `mlops cluster` against the in-process ones, side by side in one run.

    .venv/bin/python bench/cluster_bench.py --home <a demo home> [--days 5] [--skip-ray]

Spark: `features/flight_features` of one day at a time through `dagster asset materialize`, embedded
(`local[2]`, a JVM started in the run) and through the warm Spark Connect server (MLOPS_SPARK_REMOTE), in
alternating turns over `--days` days of the home; the step's duration (Dagster's step stats) and the
command's wall time, medians. Ray: the Jan-Mar tuning of the home's training set with a local Ray and on
the two-node cluster (MLOPS_RAY_ADDRESS): wall time of `Tuner.fit()` and the overhead against ideal (sum
of trial time / parallel trials). The clusters are started in the home (`mlops cluster up`) if they are not
running, and left running. Figures go to bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
RESULTS = HERE / "bench" / "results" / "cluster.json"


def materialize_day(home: Path, day: str, remote: str | None) -> tuple[float, float]:
    """(step seconds, command wall seconds) of the features of `day`, in a scratch Dagster instance."""
    import dagster as dg

    from mlops_assets.demo import materialize_command

    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as dagster_home:
        env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": dagster_home}
        env.pop("MLOPS_SPARK_REMOTE", None)
        if remote:
            env["MLOPS_SPARK_REMOTE"] = remote
        started = time.perf_counter()
        done = subprocess.run(
            materialize_command("features/flight_features", "--partition", day),
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"features of {day} failed:\n{done.stderr[-3000:]}")
        with dg.DagsterInstance.from_config(dagster_home) as instance:
            run = instance.get_runs(limit=1)[0]
            step = instance.get_run_step_stats(run.run_id)[0]
    return step.end_time - step.start_time, wall


def spark_figures(home: Path, days: list[str], connect_url: str) -> dict:
    figures: dict[str, dict[str, list[float]]] = {
        "embedded": {"step": [], "wall": []},
        "connect": {"step": [], "wall": []},
    }
    for turn, day in enumerate(days):
        order = ["embedded", "connect"] if turn % 2 == 0 else ["connect", "embedded"]
        for name in order:
            step, wall = materialize_day(home, day, connect_url if name == "connect" else None)
            figures[name]["step"].append(step)
            figures[name]["wall"].append(wall)
            print(f"  {day} {name:9} step {step:6.1f} s  command {wall:6.1f} s", flush=True)
    return figures


def ray_figures(home: Path, address: str) -> dict:
    """The tuning of the home's training set, locally and on the cluster (each in a fresh process)."""
    results = {}
    for name, env_address in (("local", None), ("cluster", address)):
        env = {**os.environ, "MLOPS_HOME": str(home)}
        env.pop("MLOPS_RAY_ADDRESS", None)
        if env_address:
            env["MLOPS_RAY_ADDRESS"] = env_address
        done = subprocess.run(
            [sys.executable, __file__, "--tune-child", str(home)], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"tuning ({name}) failed:\n{done.stderr[-3000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {name:8} {results[name]}", flush=True)
    return results


def tune_child(home: Path) -> None:
    from mlops_assets.resources.compute import ComputeResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.training.data import load_training_data, prepared_arrays
    from mlops_assets.training.tuning import run_tuning

    class Quiet:
        def info(self, message: str) -> None:
            pass

        debug = info

    lake = LocalObjectStore(root=str(home / "lake"))
    data = load_training_data(lake, holdout_days=14, valid_days=14)
    prep, arrays = prepared_arrays(data)
    address = os.environ.get("MLOPS_RAY_ADDRESS")
    compute = ComputeResource(ray_address=address) if address else ComputeResource(num_cpus=2)
    with tempfile.TemporaryDirectory() as storage:
        outcome = run_tuning(
            data={"preprocessor": prep.to_dict(), **arrays},
            compute=compute,
            num_samples=8,
            max_epochs=6,
            grace_period=2,
            seed=7,
            storage_path=storage,
            name="cluster-bench",
            log=Quiet(),
        )
    nodes = sorted({t.get("node") or "?" for t in outcome.trials})
    print(json.dumps({"wall_s": round(outcome.wall_seconds, 1), "ideal_s": round(outcome.ideal_seconds, 1),
                      "overhead": round(outcome.overhead, 3), "parallelism": outcome.parallelism,
                      "nodes": nodes}))  # fmt: skip


def ensure_cluster(home: Path, engine: str) -> None:
    env = {**os.environ, "MLOPS_HOME": str(home)}
    command = [sys.executable, "-m", "mlops_assets.cli", "cluster", "up", "--only", engine]
    if subprocess.run(command, env=env).returncode != 0:
        raise SystemExit(f"mlops cluster up --only {engine} failed")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, help="a home that `mlops demo` filled")
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--first-day", default="2013-03-10")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--tune-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tune_child:
        tune_child(args.tune_child)
        return 0
    if args.home is None:
        parser.error("--home is required")
    from mlops_assets.cluster.ray_nodes import RayClusterSpec
    from mlops_assets.cluster.spark import SparkClusterSpec

    home = args.home.resolve()
    first = dt.date.fromisoformat(args.first_day)
    days = [str(first + dt.timedelta(days=i)) for i in range(args.days)]
    print(f"load average {os.getloadavg()[0]:.1f}")
    ensure_cluster(home, "spark")
    spark = spark_figures(home, days, SparkClusterSpec().connect_url)
    result: dict = {"load_average_start": os.getloadavg()[0], "days": days, "spark": spark}
    print("\n| features of one day | embedded (median) | Spark Connect (median) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for figure in ("step", "wall"):
        a, b = (statistics.median(spark[n][figure]) for n in ("embedded", "connect"))
        label = "the step" if figure == "step" else "the `dagster asset materialize` command"
        print(f"| {label} | {a:.1f} s | {b:.1f} s | {a / b:.2f}x |")
    if not args.skip_ray:
        ensure_cluster(home, "ray")
        result["ray"] = ray_figures(home, RayClusterSpec().address)
    result["load_average_end"] = os.getloadavg()[0]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"load average {os.getloadavg()[0]:.1f}; figures in {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
