"""A trained model on disk: weights, preprocessing and hyperparameters in one folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mlops_assets.ml.fit import HyperParameters, build_model, predict_frame
from mlops_assets.ml.preprocessing import Preprocessor

WEIGHTS = "weights.pt"
PREPROCESSING = "preprocessing.json"
HYPERPARAMETERS = "hyperparameters.json"


@dataclass
class ModelBundle:
    model: nn.Module  # TabularNet or SeedEnsemble
    preprocessor: Preprocessor
    hyperparameters: HyperParameters

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save(state, folder / WEIGHTS)
        (folder / PREPROCESSING).write_text(json.dumps(self.preprocessor.to_dict(), indent=1))
        (folder / HYPERPARAMETERS).write_text(json.dumps(self.hyperparameters.to_dict(), indent=1))
        return folder

    @classmethod
    def load(cls, folder: Path, device: str | torch.device = "cpu") -> ModelBundle:
        folder = Path(folder)
        prep = Preprocessor.from_dict(json.loads((folder / PREPROCESSING).read_text()))
        hp = HyperParameters.from_dict(json.loads((folder / HYPERPARAMETERS).read_text()))
        model = build_model(prep, hp)
        model.load_state_dict(torch.load(folder / WEIGHTS, map_location=device, weights_only=True))
        return cls(model=model.to(device).eval(), preprocessor=prep, hyperparameters=hp)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return predict_frame(self.model, self.preprocessor, frame)
