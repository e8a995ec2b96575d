"""Training the network of a model version: the one routine that `models/flight_delay_model` and
`mlops model reproduce` both call, so that a reproduction retrains exactly as the graph did.

Imports torch (through ml/fit) inside the functions: the code location loads this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_assets.ml.bundle import ModelBundle
    from mlops_assets.ml.fit import FitResult, HyperParameters
    from mlops_assets.ml.preprocessing import Preprocessor
    from mlops_assets.training.data import TrainingData

# Early stopping's patience of the final model, and the fewest epochs it may run, whatever tuning found
# (tuning's short budgets stop trials early; the final model gets the room to converge).
FINAL_PATIENCE = 4
FINAL_MIN_EPOCHS = 20


@dataclass
class TrainedNetwork:
    fit: FitResult
    preprocessor: Preprocessor
    hyperparameters: HyperParameters
    decision_threshold: float  # the F1-best probability cut on the validation days

    def bundle(self) -> ModelBundle:
        """The model on the CPU with its preprocessing: what the pyfunc saves and serving loads."""
        from mlops_assets.ml.bundle import ModelBundle

        return ModelBundle(
            model=self.fit.model.cpu(), preprocessor=self.preprocessor, hyperparameters=self.hyperparameters
        )


def final_hyperparameters(
    tuned: dict[str, Any], max_epochs: int | None, ensemble_size: int
) -> HyperParameters:
    """The final model's hyperparameters from tuning's best: a larger epoch budget, fixed patience and
    the ensemble size. The result is what the model's run logs, and what a reproduction reads back."""
    from mlops_assets.ml.fit import HyperParameters

    hp = HyperParameters.from_dict(tuned)
    return dataclasses.replace(
        hp,
        max_epochs=max_epochs or max(hp.max_epochs, FINAL_MIN_EPOCHS),
        patience=FINAL_PATIENCE,
        ensemble_size=ensemble_size,
    )


def train_network(
    data: TrainingData,
    hp: HyperParameters,
    seed: int,
    device: Any,
    shuffle_labels: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainedNetwork:
    """Fit on the training days, early-stop on the validation days, choose the decision threshold there.

    `shuffle_labels` is the negative control: the training labels permuted with `seed`, so a control is
    reproducible too."""
    import numpy as np

    from mlops_assets.ml.fit import Tensors, fit, predict_tensors
    from mlops_assets.ml.metrics import f1_threshold
    from mlops_assets.training.data import prepared_arrays

    prep, cached = prepared_arrays(data)
    arrays = dict(cached)  # the cached arrays stay as loaded: other steps of the process share them
    if shuffle_labels:
        labels = arrays["train"][2].copy()
        np.random.default_rng(seed).shuffle(labels)
        arrays["train"] = (*arrays["train"][:2], labels)
    train, valid = (Tensors.from_arrays(*arrays[part], device) for part in ("train", "valid"))
    result = fit(prep, train, valid, hp, seed=seed, on_epoch=on_epoch)
    valid_p = predict_tensors(result.model, valid).cpu().numpy()
    threshold = f1_threshold(arrays["valid"][2], valid_p)
    return TrainedNetwork(fit=result, preprocessor=prep, hyperparameters=hp, decision_threshold=threshold)
