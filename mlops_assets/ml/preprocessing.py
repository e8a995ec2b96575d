"""Preprocessing fitted on the training rows only and saved with the model (plain JSON).

Categories become indices (0 = unseen). Numbers are mapped through their training quantiles onto a
standard normal (delay counts, precipitation and wind are heavy-tailed; an MLP learns faster from
rank-shaped inputs, and an outlier cannot blow up an activation); a missing value takes the training
median's place and a missing-indicator is added for every column that had gaps in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

QUANTILES = 101
EDGE = 1e-3  # normal scores are bounded to about +-3.1


@dataclass
class Preprocessor:
    categorical: list[str]
    numeric: list[str]
    vocabulary: dict[str, list[str]] = field(default_factory=dict)
    median: dict[str, float] = field(default_factory=dict)
    quantiles: dict[str, list[float]] = field(default_factory=dict)
    indicators: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, frame: pd.DataFrame, categorical: list[str], numeric: list[str]) -> Preprocessor:
        prep = cls(categorical=list(categorical), numeric=list(numeric))
        for column in categorical:
            values = frame[column].dropna().map(spell_category).unique()
            prep.vocabulary[column] = sorted(values.tolist())
        for column in numeric:
            values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            present = values.dropna().to_numpy()
            prep.median[column] = float(np.median(present)) if len(present) else 0.0
            grid = np.linspace(0, 1, QUANTILES)
            prep.quantiles[column] = (
                np.quantile(present, grid).tolist() if len(present) else [0.0] * QUANTILES
            )
            if values.isna().any():
                prep.indicators.append(column)
        return prep

    @property
    def cardinalities(self) -> list[int]:
        """Rows of each embedding table: the vocabulary plus index 0 for unseen values."""
        return [len(self.vocabulary[c]) + 1 for c in self.categorical]

    @property
    def numeric_width(self) -> int:
        return len(self.numeric) + len(self.indicators)

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(category indices int64 [n, k], numbers float32 [n, m])."""
        missing = [c for c in (*self.categorical, *self.numeric) if c not in frame.columns]
        if missing:
            raise KeyError(f"input lacks column(s) the model was trained on: {', '.join(missing)}")
        codes = np.zeros((len(frame), len(self.categorical)), dtype=np.int64)
        for j, column in enumerate(self.categorical):
            spelled = frame[column].map(spell_category, na_action="ignore")
            codes[:, j] = pd.Categorical(spelled, categories=self.vocabulary[column]).codes + 1  # -1 -> 0
        numbers = np.empty((len(frame), self.numeric_width), dtype=np.float32)
        for j, column in enumerate(self.numeric):
            values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
            numbers[:, j] = _normal_scores(
                values.fillna(self.median[column]).to_numpy(), self.quantiles[column]
            )
        for j, column in enumerate(self.indicators, start=len(self.numeric)):
            numbers[:, j] = frame[column].isna().to_numpy(dtype=np.float32)
        return codes, numbers

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessor:
        return cls(**data)


def _normal_scores(values: np.ndarray, quantiles: list[float]) -> np.ndarray:
    """Rank through the training quantiles, then the standard normal's quantile function.

    Ties (a column that is mostly 0) are interpolated from both sides, as scikit-learn's
    QuantileTransformer does, so a repeated value gets the middle of its rank range."""
    from scipy.special import ndtri

    q = np.asarray(quantiles)
    ranks = np.linspace(0, 1, len(q))
    rank = 0.5 * (np.interp(values, q, ranks) - np.interp(-values, -q[::-1], -ranks[::-1]))
    return ndtri(np.clip(rank, EDGE, 1 - EDGE))


def spell_category(value) -> str:
    """One spelling per category: 7, 7.0 and "7" are the same hour."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
