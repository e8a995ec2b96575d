"""Ray Tune over the training core: a plain trainable function, the `Tuner` API and ASHA.

Trials get the prepared arrays through Ray's object store (`tune.with_parameters`), move them to their
device once, and report every epoch with `tune.report`; ASHA stops the weak ones early. Each trial asks for
`cpus_per_trial` CPUs (and runs that many torch threads) and, on CUDA, `gpus_per_trial` GPUs, so Ray never
runs more trials at once than the machine holds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.ml.fit import HyperParameters

METRIC, MODE = "val_auc", "max"


def search_space(max_epochs: int) -> dict[str, Any]:
    from ray import tune

    return {
        "learning_rate": tune.loguniform(1e-3, 5e-3),
        # Depth 0 is the embeddings and numbers into the linear path alone. Measured on Jan-Mar 2013, deep
        # and lightly regularized nets fit January-February and lose on late March; strong weight decay
        # and dropout are what generalize, so the space leans there.
        "depth": tune.choice([0, 1, 2]),
        "width": tune.choice([32, 64, 128]),
        "dropout": tune.uniform(0.1, 0.5),
        "weight_decay": tune.loguniform(1e-4, 3e-2),
        "batch_size": tune.choice([512, 1024, 2048]),
        "embedding_dim": tune.choice([4, 8, 16]),
        "max_epochs": max_epochs,
    }


def starting_point() -> dict[str, Any]:
    """The defaults of HyperParameters, tried first: the search can only improve on them."""
    defaults = HyperParameters().to_dict()
    return {k: defaults[k] for k in ("learning_rate", "depth", "width", "dropout", "weight_decay",
                                     "batch_size", "embedding_dim")}  # fmt: skip


def trial(config: dict, data: dict, device: str, threads: int, seed: int) -> None:
    """One Ray Tune trial: fit with `config`, report each epoch (ASHA may stop it between epochs)."""
    import ray
    import torch
    from ray import tune

    from mlops_assets.ml.device import resolve_device
    from mlops_assets.ml.fit import Tensors, fit
    from mlops_assets.ml.preprocessing import Preprocessor

    torch.set_num_threads(threads)
    target = resolve_device(device)
    prep = Preprocessor.from_dict(data["preprocessor"])
    train = Tensors.from_arrays(*data["train"], target)
    valid = Tensors.from_arrays(*data["valid"], target)
    hp = HyperParameters.from_dict(
        {**HyperParameters().to_dict(), **config, "patience": config["max_epochs"]}
    )
    # Which Ray node ran the trial: on a cluster the log shows the trials spread over its nodes.
    node = ray.get_runtime_context().get_node_id()[:8]
    fit(prep, train, valid, hp, seed=seed, on_epoch=lambda metrics: tune.report({**metrics, "node": node}))


@dataclass
class TuningOutcome:
    best: HyperParameters
    best_metrics: dict[str, float]
    trials: list[dict] = field(default_factory=list)
    wall_seconds: float = 0.0
    trial_seconds: float = 0.0
    parallelism: int = 1

    @property
    def ideal_seconds(self) -> float:
        return self.trial_seconds / self.parallelism

    @property
    def overhead(self) -> float:
        """Wall time over the ideal (sum of trial time / parallelism), minus one."""
        return self.wall_seconds / self.ideal_seconds - 1 if self.ideal_seconds else float("nan")


def _log_callback(log):
    from ray.tune import Callback

    class DagsterLog(Callback):
        """Trial progress into the Dagster step's log."""

        def __init__(self, log) -> None:
            self.log = log

        # Tune pickles its run config with the experiment state; the step's logger stays behind.
        def __getstate__(self):
            return {"log": None}

        # Every epoch of every trial at DEBUG (the UI's full log); a finished trial at INFO, which is what
        # `mlops demo` prints while the step runs.
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if self.log is not None:
                self.log.debug(
                    f"trial {trial.trial_id} epoch {result.get('epoch')}: "
                    f"val_auc {result.get('val_auc', 0):.4f} val_loss {result.get('val_loss', 0):.4f} "
                    f"({result.get('samples_per_second', 0):,.0f} samples/s)"
                )

        def on_trial_complete(self, iteration, trials, trial, **info):
            if self.log is not None:
                # The trial itself is not counted as terminated yet when Tune calls this.
                done = sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not trial) + 1
                last = trial.last_result or {}
                self.log.info(
                    f"trial {trial.trial_id} finished after {last.get('epoch')} epoch(s) on node "
                    f"{last.get('node', '?')}, last val_auc {last.get('val_auc', float('nan')):.4f} "
                    f"({done}/{len(trials)} trials)"
                )

    return DagsterLog(log)


def run_tuning(
    data: dict,
    compute,  # ComputeResource
    num_samples: int,
    max_epochs: int,
    grace_period: int,
    seed: int,
    storage_path: str,
    name: str,
    log,
    mlflow_callback=None,
    time_budget_s: float | None = None,
) -> TuningOutcome:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    resources = compute.trial_resources()
    device = "cuda" if resources["gpu"] else "cpu"
    started_ray = not ray.is_initialized()
    auth_mode = os.environ.get(RAY_AUTH_MODE_ENV)
    if started_ray:
        ray.init(**compute.ray_init_kwargs())
    try:
        capacity = ray.cluster_resources()
        slots = int(capacity.get("CPU", 1) // resources["cpu"])
        if resources["gpu"]:
            slots = min(slots, int(capacity.get("GPU", 0) // resources["gpu"]))
        parallelism = max(1, min(slots, num_samples))
        trainable = tune.with_resources(
            tune.with_parameters(trial, data=data, device=device, threads=int(resources["cpu"]), seed=seed),
            resources,
        )
        callbacks = [_log_callback(log)] + ([mlflow_callback] if mlflow_callback else [])
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(max_epochs),
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode=MODE,
                num_samples=num_samples,
                scheduler=ASHAScheduler(
                    time_attr="training_iteration",
                    max_t=max_epochs,
                    grace_period=grace_period,
                    reduction_factor=2,
                ),
                search_alg=BasicVariantGenerator(points_to_evaluate=[starting_point()], random_state=seed),
                reuse_actors=True,
                time_budget_s=time_budget_s,
            ),
            run_config=tune.RunConfig(name=name, storage_path=storage_path, callbacks=callbacks, verbose=0),
        )
        started = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - started
    finally:
        if started_ray:
            ray.shutdown()
            _restore_env(RAY_AUTH_MODE_ENV, auth_mode)
    return _outcome(grid, wall, parallelism)


# Ray 2.60's local `ray.init()` sets RAY_AUTH_MODE=token in os.environ and leaves it there: a later driver
# of the same process joining a cluster started without authentication (`mlops cluster up`) then has
# every trial cancelled. The process gets back the value it had.
RAY_AUTH_MODE_ENV = "RAY_AUTH_MODE"


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _outcome(grid, wall: float, parallelism: int) -> TuningOutcome:
    errors = [r.error for r in grid if r.error]
    if errors and len(errors) == len(grid):
        raise RuntimeError(f"every Ray Tune trial failed; first error: {errors[0]}")
    best = grid.get_best_result(metric=METRIC, mode=MODE, scope="all")
    history = best.metrics_dataframe
    best_row = history.loc[history[METRIC].idxmax()]
    trials = []
    for result in grid:
        if result.error:
            continue
        frame = result.metrics_dataframe
        trials.append(
            {
                "trial_id": result.metrics.get("trial_id"),
                "config": {k: v for k, v in result.config.items()},
                "epochs": len(frame),
                "best_val_auc": float(frame[METRIC].max()),
                "seconds": float(frame["time_this_iter_s"].sum()),
                "node": str(frame["node"].iloc[-1]) if "node" in frame else None,
            }
        )
    config = {**best.config, "max_epochs": int(best.config["max_epochs"])}
    return TuningOutcome(
        best=HyperParameters.from_dict(config),
        best_metrics={
            "val_auc": float(best_row[METRIC]),
            "val_loss": float(best_row["val_loss"]),
            "epoch": int(best_row["epoch"]),
        },
        trials=sorted(trials, key=lambda t: -t["best_val_auc"]),
        wall_seconds=wall,
        trial_seconds=sum(t["seconds"] for t in trials),
        parallelism=parallelism,
    )


def trial_runs_logger(**kwargs):
    """Ray's MLflowLoggerCallback (each trial a nested MLflow run), except that a trial which never started
    (its actor cancelled or lost before it ran) has no run to end: Ray's callback raised KeyError there,
    inside `Tuner.fit()`, and the whole tuning failed instead of that one trial."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class TrialRunsLogger(MLflowLoggerCallback):
        def log_trial_end(self, trial, failed: bool = False) -> None:
            if trial in self._trial_runs:
                super().log_trial_end(trial, failed)

    return TrialRunsLogger(**kwargs)
