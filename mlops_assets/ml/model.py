"""The tabular network: one embedding per categorical input, concatenated with the numbers, then an MLP
beside a linear path."""

from __future__ import annotations

import torch
from torch import nn


class TabularNet(nn.Module):
    def __init__(
        self,
        cardinalities: list[int],
        numeric_width: int,
        embedding_dim: int,
        width: int,
        depth: int,
        dropout: float,
    ) -> None:
        super().__init__()
        # A category with few values needs fewer dimensions than the configured size.
        dims = [min(embedding_dim, max(2, (c + 1) // 2)) for c in cardinalities]
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cardinalities, dims, strict=True))
        layers: list[nn.Module] = []
        size = sum(dims) + numeric_width
        # A linear path beside the MLP ("wide and deep"): the network starts from what a logistic
        # regression can express and the MLP only has to learn the interactions on top.
        # Depth 0 leaves the linear path alone (the tuner may find that it generalizes best).
        self.wide = nn.Linear(size, 1)
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)]
            size = width
        self.mlp = nn.Sequential(*layers, nn.Linear(size, 1)) if depth else None

    def forward(self, codes: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """Logits, one per row."""
        embedded = [table(codes[:, j]) for j, table in enumerate(self.embeddings)]
        inputs = torch.cat([*embedded, numbers], dim=1)
        logits = self.wide(inputs)
        if self.mlp is not None:
            logits = logits + self.mlp(inputs)
        return logits.squeeze(1)


class SeedEnsemble(nn.Module):
    """Networks of one configuration trained from different seeds; predicts their mean probability.

    The seed alone moves a network's holdout ROC-AUC by about 0.02 on this data; the mean of five is
    steadier and better than a typical member."""

    def __init__(self, members: list[TabularNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, codes: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """Logits of the mean probability, so callers treat it like one network."""
        probabilities = torch.stack([torch.sigmoid(m(codes, numbers)) for m in self.members]).mean(0)
        return torch.logit(probabilities, eps=1e-7)
