"""Fitting the tabular network: seeded, data resident on the device, early stopping on validation loss."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch

from mlops_assets.ml.model import SeedEnsemble, TabularNet
from mlops_assets.ml.preprocessing import Preprocessor

EVAL_BATCH = 65_536


@dataclass(frozen=True)
class HyperParameters:
    # Defaults measured to generalize across the seasons of 2013 (see tuning.py's search space).
    learning_rate: float = 3e-3
    width: int = 64
    depth: int = 1
    dropout: float = 0.3
    batch_size: int = 1024
    embedding_dim: int = 8
    weight_decay: float = 1e-2
    max_epochs: int = 20
    patience: int = 4
    ensemble_size: int = 1  # > 1: that many networks from consecutive seeds, averaged

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HyperParameters:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Tensors:
    """One part of the data, already on the training device."""

    codes: torch.Tensor
    numbers: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def build(cls, prep: Preprocessor, frame: pd.DataFrame, label: str, device: torch.device) -> Tensors:
        codes, numbers = prep.transform(frame)
        labels = frame[label].astype("float32").to_numpy()
        return cls.from_arrays(codes, numbers, labels, device)

    @classmethod
    def from_arrays(cls, codes, numbers, labels, device: torch.device) -> Tensors:
        return cls(
            codes=torch.as_tensor(codes, dtype=torch.int64, device=device),
            numbers=torch.as_tensor(numbers, dtype=torch.float32, device=device),
            labels=torch.as_tensor(labels, dtype=torch.float32, device=device),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class FitResult:
    model: torch.nn.Module  # TabularNet or SeedEnsemble
    history: list[dict] = field(default_factory=list)  # every epoch of every member ("member": i)
    best_epoch: int = 0  # of the first member
    train_seconds: float = 0.0
    samples_per_second: float = 0.0
    valid_metrics: dict = field(default_factory=dict)  # of the returned model (the ensemble, if any)

    @property
    def best(self) -> dict:
        return self.valid_metrics or self.history[self.best_epoch - 1]


def build_network(prep: Preprocessor, hp: HyperParameters) -> TabularNet:
    return TabularNet(
        prep.cardinalities, prep.numeric_width, hp.embedding_dim, hp.width, hp.depth, hp.dropout
    )


def build_model(prep: Preprocessor, hp: HyperParameters) -> TabularNet | SeedEnsemble:
    if hp.ensemble_size > 1:
        return SeedEnsemble([build_network(prep, hp) for _ in range(hp.ensemble_size)])
    return build_network(prep, hp)


def fit(
    prep: Preprocessor,
    train: Tensors,
    valid: Tensors,
    hp: HyperParameters,
    seed: int = 0,
    on_epoch: Callable[[dict], None] | None = None,
) -> FitResult:
    """One network, or `hp.ensemble_size` of them from seeds seed, seed+1, ... averaged."""
    from sklearn.metrics import roc_auc_score

    size = max(1, hp.ensemble_size)
    members = [
        _fit_one(prep, train, valid, hp, seed + i, on_epoch, {"member": i} if size > 1 else {})
        for i in range(size)
    ]
    if size == 1:
        return members[0]
    model = SeedEnsemble([m.model for m in members]).eval()
    seconds = sum(m.train_seconds for m in members)
    probabilities = predict_tensors(model, valid).clamp(1e-7, 1 - 1e-7)
    return FitResult(
        model=model,
        history=[h for m in members for h in m.history],
        best_epoch=members[0].best_epoch,
        train_seconds=seconds,
        samples_per_second=sum(m.samples_per_second * m.train_seconds for m in members) / seconds,
        valid_metrics={
            "val_loss": float(torch.nn.functional.binary_cross_entropy(probabilities, valid.labels)),
            "val_auc": float(roc_auc_score(valid.labels.cpu().numpy(), probabilities.cpu().numpy())),
        },
    )


def _fit_one(
    prep: Preprocessor,
    train: Tensors,
    valid: Tensors,
    hp: HyperParameters,
    seed: int = 0,
    on_epoch: Callable[[dict], None] | None = None,
    tag: dict | None = None,
) -> FitResult:
    """AdamW on BCE; keeps the weights of the epoch with the lowest validation loss and stops after
    `patience` epochs without improvement. `on_epoch` sees every epoch's metrics (Ray Tune reports them)."""
    from sklearn.metrics import roc_auc_score

    device = train.labels.device
    torch.manual_seed(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    model = build_network(prep, hp).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    result = FitResult(model=model)
    best_loss, best_state, stale = float("inf"), None, 0
    fitting_seconds, samples = 0.0, 0
    for epoch in range(1, hp.max_epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=generator, device=device)
        total = torch.zeros((), device=device)
        for start in range(0, len(train), hp.batch_size):
            rows = order[start : start + hp.batch_size]
            if len(rows) < 2:  # BatchNorm needs two rows
                continue
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(train.codes[rows], train.numbers[rows]), train.labels[rows])
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(rows)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        fitting_seconds += seconds
        samples += len(train)
        probabilities = predict_tensors(model, valid)
        valid_loss = float(loss_fn(torch.logit(probabilities.clamp(1e-7, 1 - 1e-7)), valid.labels))
        metrics = {
            "epoch": epoch,
            "train_loss": float(total) / len(train),
            "val_loss": valid_loss,
            "val_auc": float(roc_auc_score(valid.labels.cpu().numpy(), probabilities.cpu().numpy())),
            "epoch_seconds": seconds,
            "samples_per_second": len(train) / seconds,
            **(tag or {}),
        }
        result.history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
        if valid_loss < best_loss - 1e-5:
            best_loss, best_state, stale, result.best_epoch = (
                valid_loss,
                copy.deepcopy(model.state_dict()),
                0,
                epoch,
            )
        else:
            stale += 1
            if stale >= hp.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.train_seconds = fitting_seconds
    result.samples_per_second = samples / fitting_seconds if fitting_seconds else 0.0
    return result


@torch.no_grad()
def predict_tensors(model: torch.nn.Module, data: Tensors) -> torch.Tensor:
    model.eval()
    parts = [
        torch.sigmoid(model(data.codes[i : i + EVAL_BATCH], data.numbers[i : i + EVAL_BATCH]))
        for i in range(0, len(data), EVAL_BATCH)
    ]
    return torch.cat(parts) if parts else torch.empty(0, device=data.labels.device)


@torch.no_grad()
def predict_frame(model: torch.nn.Module, prep: Preprocessor, frame: pd.DataFrame) -> np.ndarray:
    """Probability of a late arrival for each row of `frame` (any extra columns are ignored)."""
    device = next(model.parameters()).device
    codes, numbers = prep.transform(frame)
    data = Tensors.from_arrays(codes, numbers, np.zeros(len(frame), dtype=np.float32), device)
    return predict_tensors(model, data).cpu().numpy().astype("float64")
