"""Training benchmark: model quality side by side, Ray Tune overhead, and training throughput.

    .venv/bin/python bench/training_bench.py --home /tmp/q1             # a home whose lake has a training set
    .venv/bin/python bench/training_bench.py --home data --skip-quality # overhead and throughput only

The home needs `lake/features/training_set/latest.json`, i.e. `mlops demo` (or features/training_set) ran
there; the default window of the platform is 2013-01-01..2013-03-31.

1. Quality: the whole training graph (tuning, baselines, final model, evaluation, registry) in-process
   against a throw-away MLflow store; the holdout metrics of every model side by side. The challenger is
   whichever family validated better (models/flight_delay_model); the other family is then trained and
   evaluated too (model and evaluation again, outside the graph's wall time), so both are in the table.
2. Ray Tune overhead: `--tune-repeats` tunings of `--tune-trials` trials on the training split; wall time
   of `Tuner.fit()` against the ideal (sum of trial time / parallel trials); median over the repeats.
   Ray's own published figure is about 14 %.
3. Throughput: training samples per second of the fit loop on this machine's CPU (torch threads 1 and 2),
   median epoch after the first; on CUDA too when there is one.

Prints the tables and writes the figures to bench/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
RESULTS_FILE = BENCH_DIR / "results" / "training.json"


def log(message: str) -> None:
    print(f"[training-bench] {message}", flush=True)


def load_split(home: Path, holdout_days: int, valid_days: int):
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.training.data import load_training_data

    return load_training_data(LocalObjectStore(root=str(home / "lake")), holdout_days, valid_days)


def quality(home: Path, args) -> dict:
    import dagster as dg

    from mlops_assets.defs.training.assets import build_training_assets
    from mlops_assets.resources.compute import ComputeResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.tracking import MlflowResource
    from mlops_assets.resources.training_plan import TrainingPlan

    scratch = Path(tempfile.mkdtemp(prefix="training-bench-"))
    lake = LocalObjectStore(root=str(home / "lake"))
    resources = {
        "mlflow": MlflowResource(
            tracking_uri=f"sqlite:///{scratch / 'mlflow.db'}",
            artifact_location=(scratch / "artifacts").as_uri(),
        ),
        "compute": ComputeResource(device=args.device),
        "training": TrainingPlan(
            home=str(scratch), holdout_days=args.holdout_days, valid_days=args.valid_days
        ),
        "lake": lake,
    }
    tuning = {"num_samples": args.tune_trials, "max_epochs": args.tune_epochs, "grace_period": 3}
    started = time.perf_counter()
    result = dg.materialize(
        build_training_assets(),
        resources=resources,
        run_config={"ops": {"models__tuned_hyperparameters": {"config": tuning}}},
    )
    seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit("the training graph failed")
    evaluation = json.loads(lake.read_bytes("models/model_evaluation.json"))
    registered = json.loads(lake.read_bytes("models/registered_model.json"))
    model = json.loads(lake.read_bytes("models/flight_delay_model.json"))
    family = model.get("model_family", "pytorch_tabular")
    metrics = {f"{family} (candidate)": evaluation["metrics"].pop("candidate"), **evaluation["metrics"]}
    if not args.candidate_only:
        metrics.update(_other_family(build_training_assets(), resources, lake, family, tuning))
    print(
        f"\nholdout {evaluation['holdout']} ({evaluation['holdout_rows']} flights); "
        f"graph wall {seconds:.0f} s; {family} chosen: {model.get('family_choice', '-')}"
    )
    print(f"{'model':<34}{'roc_auc':>9}{'pr_auc':>9}{'log_loss':>10}{'brier':>8}{'ece':>8}")
    for name, m in metrics.items():
        print(
            f"{name:<34}{m['roc_auc']:>9.4f}{m['pr_auc']:>9.4f}{m['log_loss']:>10.4f}{m['brier']:>8.4f}{m['ece']:>8.4f}"
        )
    print(
        f"registry: version {registered['version']} promoted={registered['promoted']} {registered['reasons']}"
    )
    return {
        "holdout": evaluation["holdout"],
        "metrics": metrics,
        "family": family,
        "family_choice": model.get("family_choice"),
        "graph_seconds": seconds,
        "promoted": registered["promoted"],
    }


def _other_family(assets, resources: dict, lake, chosen: str, tuning: dict) -> dict:
    """The family the graph did not choose, trained and evaluated on the same holdout (not registered)."""
    import dagster as dg

    from mlops_assets.resources.training_plan import TrainingPlan

    other = "gradient_boosting" if chosen == "pytorch_tabular" else "pytorch_tabular"
    names = ("tuned_hyperparameters", "flight_delay_model", "model_evaluation")
    if other == "gradient_boosting":
        names = names[1:]  # the trees use no tuning
    keys = [dg.AssetKey(["models", name]) for name in names]
    plan = resources["training"]
    resources = {
        **resources,
        "training": TrainingPlan(
            home=plan.home, holdout_days=plan.holdout_days, valid_days=plan.valid_days, seed=plan.seed,
            family=other,
        ),
    }  # fmt: skip
    log(f"training the other family ({other}) for the table")
    tuned = other != "gradient_boosting"
    config = {"ops": {"models__tuned_hyperparameters": {"config": tuning}}} if tuned else {}
    if not dg.materialize(assets, selection=keys, resources=resources, run_config=config).success:
        raise SystemExit(f"the {other} run failed")
    evaluation = json.loads(lake.read_bytes("models/model_evaluation.json"))
    return {f"{other} (not chosen)": evaluation["metrics"]["candidate"]}


def tune_overhead(home: Path, args) -> dict:
    import logging

    from mlops_assets.resources.compute import ComputeResource
    from mlops_assets.training.data import prepared_arrays

    data = load_split(home, args.holdout_days, args.valid_days)
    prep, arrays = prepared_arrays(data)
    compute = ComputeResource(device=args.device)
    quiet = logging.getLogger("training-bench")
    figures = {}
    for epochs in args.tune_epochs_overhead:
        figures[f"{epochs}_epochs"] = _tune_rounds(prep, arrays, compute, quiet, args, epochs)
    return figures


def _tune_rounds(prep, arrays, compute, quiet, args, epochs: int) -> dict:
    from mlops_assets.training.tuning import run_tuning

    rows = []
    for repeat in range(args.tune_repeats):
        storage = tempfile.mkdtemp(prefix="tune-bench-")
        outcome = run_tuning(
            data={"preprocessor": prep.to_dict(), **arrays}, compute=compute, num_samples=args.tune_trials,
            max_epochs=epochs, grace_period=2, seed=repeat, storage_path=storage,
            name=f"bench-{repeat}", log=quiet,
        )  # fmt: skip
        rows.append(
            {
                "wall_s": outcome.wall_seconds,
                "trial_s": outcome.trial_seconds,
                "parallelism": outcome.parallelism,
                "ideal_s": outcome.ideal_seconds,
                "overhead": outcome.overhead,
                "epochs": sum(t["epochs"] for t in outcome.trials),
            }
        )
        log(
            f"tuning {repeat + 1}/{args.tune_repeats}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items())
        )
    print(
        f"\nRay Tune, {args.tune_trials} trials x <= {epochs} epochs, ASHA, "
        f"{rows[0]['parallelism']} in parallel"
    )
    print(f"{'repeat':>6}{'wall s':>9}{'sum trial s':>13}{'ideal s':>9}{'overhead':>10}")
    for i, row in enumerate(rows, 1):
        print(
            f"{i:>6}{row['wall_s']:>9.1f}{row['trial_s']:>13.1f}{row['ideal_s']:>9.1f}{row['overhead']:>10.1%}"
        )
    median = statistics.median(r["overhead"] for r in rows)
    print(f"median overhead: {median:.1%} (Ray's published figure: about 14%)")
    return {"runs": rows, "median_overhead": median}


def throughput(home: Path, args) -> dict:
    import torch

    from mlops_assets.ml.data import LABEL
    from mlops_assets.ml.fit import HyperParameters, Tensors, fit
    from mlops_assets.ml.preprocessing import Preprocessor

    data = load_split(home, args.holdout_days, args.valid_days)
    prep = Preprocessor.fit(data.split.train, data.categorical, data.numeric)
    hp = HyperParameters(max_epochs=args.epochs, patience=args.epochs)
    setups = [("cpu", 1), ("cpu", 2)] + ([("cuda", 0)] if torch.cuda.is_available() else [])
    figures = {}
    for device_name, threads in setups:
        if threads:
            torch.set_num_threads(threads)
        device = torch.device(device_name)
        train, valid = (
            Tensors.build(prep, getattr(data.split, p), LABEL, device) for p in ("train", "valid")
        )
        result = fit(prep, train, valid, hp, seed=0)
        rates = [h["samples_per_second"] for h in result.history[1:]] or [
            result.history[0]["samples_per_second"]
        ]
        label = f"{device_name} ({threads} threads)" if threads else torch.cuda.get_device_name()
        figures[label] = statistics.median(rates)
    print(
        f"\ntraining throughput, batch {hp.batch_size}, {len(data.split.train)} training rows, median epoch"
    )
    for label, rate in figures.items():
        print(f"  {label:<28}{rate:>12,.0f} samples/s")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=Path("data"))
    parser.add_argument("--holdout-days", type=int, default=14)
    parser.add_argument("--valid-days", type=int, default=14)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tune-trials", type=int, default=8)
    parser.add_argument("--tune-epochs", type=int, default=10, help="max_epochs of the quality run's tuning")
    parser.add_argument("--tune-repeats", type=int, default=3)
    parser.add_argument(
        "--tune-epochs-overhead",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[8, 32],
        help="epoch budgets of the overhead runs (longer trials dilute Ray's fixed per-trial cost)",
    )
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the throughput fit")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--candidate-only", action="store_true", help="do not train the family the graph did not choose"
    )
    parser.add_argument(
        "--quality-only", action="store_true", help="skip the Ray Tune overhead and throughput sections"
    )
    args = parser.parse_args()
    home = args.home.resolve()
    results = {"machine": platform.platform(), "home": str(home)}
    if not args.skip_quality:
        results["quality"] = quality(home, args)
    if not args.quality_only:
        results["tune"] = tune_overhead(home, args)
        results["throughput"] = throughput(home, args)
    RESULTS_FILE.parent.mkdir(exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=1, default=str))
    log(f"figures written to {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
