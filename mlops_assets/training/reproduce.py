"""`mlops model reproduce --version N`: rebuild a registered version's training set from the partitions and
feature service it records, prove it is the same set (its sha256), retrain with the recorded
hyperparameters and seed through the graph's own routine (training/network.py), score the holdout as the
evaluation does, and put the figures beside the registered ones.

Nothing is logged or registered: a reproduction is a check, not a new version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_assets.features.training_set import TrainingSetIdentity
from mlops_assets.training.card_facts import CardFacts, read_facts

if TYPE_CHECKING:
    from mlops_assets.ml.fit import HyperParameters
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.warehouse import Warehouse

# Seeded training on the CPU with the recorded torch thread count repeats the same float operations in the
# same order: the same weights, so the same holdout figures, bit for bit.
CPU_TOLERANCE = 0.0
# On CUDA, cuBLAS and the scatter-adds of the embedding gradients sum in an order that varies from run to
# run, so the weights differ in their last bits and early stopping may pick another epoch. A difference of
# this size in a metric is within that noise; the seed alone moves a single network by about 0.02 ROC-AUC.
CUDA_TOLERANCE = 0.005
HOLDOUT_METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "rows",
    "positive_rate",
    "mean_prediction",
)


class ReproductionError(RuntimeError):
    """The version cannot be reproduced: what it records is missing, or the rebuilt set differs."""


@dataclass(frozen=True)
class RecordedTraining:
    """What a version's run records about how it was trained."""

    identity: TrainingSetIdentity
    hyperparameters: HyperParameters
    seed: int
    holdout_days: int
    valid_days: int
    shuffle_labels: bool
    device: str
    torch_threads: int | None
    # The challenger's family (versions from before the families were recorded are networks) and, for
    # the trees, the configuration, rounds and calibration days the run logged.
    family: str = "pytorch_tabular"
    trees: dict[str, Any] = field(default_factory=dict)
    calibration_days: int = 7


@dataclass
class Reproduction:
    version: str
    recorded: RecordedTraining
    device: str
    tolerance: float
    why: str
    rows: list[tuple[str, float | None, float]] = field(default_factory=list)  # metric, registered, now

    @property
    def equal(self) -> bool:
        return all(
            registered is not None and abs(registered - now) <= self.tolerance
            for _, registered, now in self.rows
        )


def _need(facts: CardFacts, name: str) -> str:
    value = facts.tag(name)
    if not value:
        raise ReproductionError(f"version {facts.version} records no {name!r} tag: it cannot be rebuilt")
    return value


def _day_count(span: str) -> int:
    """Days of a split part from its recorded span, for versions trained before the counts were logged
    (exact when every day of the span had flights, as every day of 2013 does)."""
    first, last = (dt.date.fromisoformat(day) for day in span.split(".."))
    return (last - first).days + 1


def _hyperparameters(params: dict[str, str]) -> HyperParameters:
    from mlops_assets.ml.fit import HyperParameters

    defaults = HyperParameters()
    values: dict[str, Any] = {}
    for name in HyperParameters.__dataclass_fields__:
        if name in params:  # MLflow keeps params as text; each takes the type of the dataclass's default
            kind = type(getattr(defaults, name))
            values[name] = float(params[name]) if kind is float else int(params[name])
    return HyperParameters(**values)


def _trees(params: dict[str, str]) -> dict[str, Any]:
    """The trees' configuration from the run's `trees.*` params (MLflow keeps params as text)."""
    from mlops_assets.ml.boosting import TreeParams

    defaults = TreeParams().to_dict()
    values: dict[str, Any] = {}
    for name, text in params.items():
        if not name.startswith("trees."):
            continue
        key = name.removeprefix("trees.")
        kind = type(defaults.get(key, 0.0)) if key != "iterations" else int
        values[key] = kind(float(text)) if kind is int else kind(text)
    return values


def recorded_training(facts: CardFacts) -> RecordedTraining:
    window = _need(facts, "training_window").split("..")
    identity = TrainingSetIdentity(
        key=_need(facts, "training_set.key"),
        sha256=_need(facts, "training_set.sha256"),
        window=(window[0], window[1]),
        feature_service=_need(facts, "feature_service"),
    )
    params = facts.params
    if "seed" not in params:
        raise ReproductionError(f"version {facts.version}'s run records no seed: it cannot be retrained")
    holdout = params.get("plan.holdout_days") or _day_count(params["holdout_days"])
    valid = params.get("plan.valid_days") or _day_count(params["valid_days"])
    threads = facts.tag("torch.num_threads")
    return RecordedTraining(
        identity=identity,
        hyperparameters=_hyperparameters(params),
        seed=int(params["seed"]),
        holdout_days=int(holdout),
        valid_days=int(valid),
        shuffle_labels=facts.tag("negative_control") == "true",
        device=facts.tag("device") or "cpu",
        torch_threads=int(threads) if threads else None,
        family=facts.tag("model_family") or "pytorch_tabular",
        trees=_trees(params),
        calibration_days=int(params.get("calibration_days", 7)),
    )


def rebuild_training_set(feast: FeastResource, warehouse: Warehouse, identity: TrainingSetIdentity) -> Any:
    """The set of `identity`'s window and feature service, built again as features/training_set builds it
    (labelled flights of the window's partitions, Feast's point-in-time join), refused unless its content
    hash is the recorded one."""
    from mlops_assets.features.training_set import build_training_set, canonical_hash, entity_frame

    start, end = identity.window
    entities = entity_frame(warehouse, start, end)
    if entities.empty:
        raise ReproductionError(
            f"fct_flights has no labelled flights in {start}..{end}: load those days first"
        )
    frame, _ = build_training_set(feast, entities, identity.feature_service)
    found = canonical_hash(frame)
    if found != identity.sha256:
        raise ReproductionError(
            f"the training set rebuilt from {start}..{end} with feature service {identity.feature_service} "
            f"has sha256 {found} ({len(frame)} rows), but the version recorded {identity.sha256} "
            f"({identity.key}): the data of those partitions changed since the version was trained "
            "(a day recomputed or landed again), so retraining could not reproduce it"
        )
    return frame


def retrain_and_score(
    frame: Any, recorded: RecordedTraining, device: Any, say: Callable[[str], None]
) -> dict[str, float]:
    """The version's training through the graph's routine, then its holdout figures as the evaluation
    computes them (plus the decision threshold chosen on the validation days)."""
    import torch

    from mlops_assets.ml.metrics import classification_metrics, f1_threshold
    from mlops_assets.training.challenger import TREES, fit_challenger_trees
    from mlops_assets.training.data import prepared_arrays, split_training_data
    from mlops_assets.training.evaluation import holdout_inputs
    from mlops_assets.training.network import train_network

    data = split_training_data(frame, recorded.identity, recorded.holdout_days, recorded.valid_days)
    inputs, labels = holdout_inputs(data)
    if recorded.family == TREES:
        say(
            f"refitting the trees on train + validation: {recorded.trees}, calibrated on the last "
            f"{recorded.calibration_days} validation days, seed {recorded.seed}"
        )
        boosted = fit_challenger_trees(
            data, recorded.trees, recorded.calibration_days, recorded.seed, recorded.shuffle_labels
        )
        threshold = f1_threshold(prepared_arrays(data)[1]["valid"][2], boosted.valid_probabilities)
        return {
            **classification_metrics(labels, boosted.model.predict(inputs)),
            "decision_threshold": threshold,
        }
    if device.type == "cpu" and recorded.torch_threads:
        torch.set_num_threads(recorded.torch_threads)
    hp = recorded.hyperparameters
    say(
        f"retraining on {device} ({torch.get_num_threads()} threads): {len(data.split.train)} training rows, "
        f"ensemble of {hp.ensemble_size}, up to {hp.max_epochs} epochs, seed {recorded.seed}"
        + (", shuffled labels (negative control)" if recorded.shuffle_labels else "")
    )
    trained = train_network(data, hp, recorded.seed, device, recorded.shuffle_labels)
    metrics = classification_metrics(labels, trained.bundle().predict(inputs))
    return {**metrics, "decision_threshold": trained.decision_threshold}


def reproduce(
    client: Any,
    name: str,
    version: str | int,
    feast: FeastResource,
    warehouse: Warehouse,
    device: str = "cpu",
    say: Callable[[str], None] = print,
) -> Reproduction:
    from mlops_assets.ml.device import resolve_device

    facts = read_facts(client, name, version)
    recorded = recorded_training(facts)
    identity = recorded.identity
    say(
        f"rebuilding the training set of {name} version {facts.version}: {'..'.join(identity.window)}, "
        f"feature service {identity.feature_service}"
    )
    frame = rebuild_training_set(feast, warehouse, identity)
    say(f"same training set: sha256 {identity.sha256} ({len(frame)} rows)")
    target = resolve_device(device)
    now = retrain_and_score(frame, recorded, target, say)
    on_cuda = "cuda" in (recorded.device, target.type)
    tolerance, why = (
        (CUDA_TOLERANCE, "trained or retrained on CUDA, whose kernels sum in a varying order")
        if on_cuda
        else (CPU_TOLERANCE, "seeded CPU training with the recorded thread count is deterministic")
    )
    result = Reproduction(facts.version, recorded, str(target), tolerance, why)
    for metric in (*HOLDOUT_METRICS, "decision_threshold"):
        registered = facts.metrics.get(metric if metric == "decision_threshold" else f"holdout_{metric}")
        result.rows.append((metric, registered, now[metric]))
    return result


def report_lines(result: Reproduction) -> list[str]:
    """The side-by-side table and the verdict."""
    lines = [f"{'metric':<20}{'registered':>14}{'reproduced':>14}{'difference':>14}"]
    for metric, registered, now in result.rows:
        before = f"{registered:.6f}" if registered is not None else "-"
        difference = f"{now - registered:+.2e}" if registered is not None else "-"
        lines.append(f"{metric:<20}{before:>14}{now:>14.6f}{difference:>14}")
    verdict = "reproduced" if result.equal else "NOT reproduced"
    lines.append(
        f"{verdict}: version {result.version} on {result.device}, tolerance {result.tolerance:g} "
        f"({result.why})"
    )
    return lines
