"""The champion's network as a few numpy operations, for scoring one flight without torch's dispatch.

The network is small (mlops_assets/ml/model.py: a seed ensemble of wide-and-deep nets, each a handful of
embeddings, one or two linear layers with batch norm): for one flight, torch spends far more time
dispatching its operations (even as a TorchScript trace) than computing them. Here the members' weights
are stacked once, so each layer is one numpy operation for all members at once.

The arithmetic is the network's in float32 (batch norm in eval mode folded into a scale and a shift, as
torch's inference kernel applies it), but matrix products sum in another order than torch's, so a
probability can differ from the eager model's in its last float32 bits (about 1e-7).
`NumpyNetwork.from_model` checks it on random batches against the eager model and refuses it beyond
`TOLERANCE`; the service then serves the TorchScript trace.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-6  # largest difference in probability from the eager model accepted (tests use the same)
NUMPY_ROWS = 16  # up to this many rows the service scores with numpy, beyond with torch (faster there)
LOGIT_EPS = 1e-7  # SeedEnsemble.forward's torch.logit(p, eps=1e-7)


class NumpyNetwork:
    """Probabilities of a SeedEnsemble (or a single TabularNet) from the (codes, numbers) arrays."""

    def __init__(self, members: list, ensemble: bool) -> None:
        import torch

        def stack(get) -> np.ndarray:
            with torch.no_grad():
                return np.stack([get(m).detach().numpy().astype(np.float32) for m in members])

        first = members[0]
        self.ensemble = ensemble
        self.embeddings = [stack(lambda m, j=j: m.embeddings[j].weight) for j in range(len(first.embeddings))]
        self.wide = (_transposed(stack(lambda m: m.wide.weight)), stack(lambda m: m.wide.bias)[:, None, :])
        self.layers: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.head: tuple[np.ndarray, np.ndarray] | None = None
        if first.mlp is not None:
            blocks = list(first.mlp)
            for i in range(0, len(blocks) - 1, len(MLP_BLOCK)):
                linear = stack(lambda m, i=i: m.mlp[i].weight)
                bias = stack(lambda m, i=i: m.mlp[i].bias)[:, None, :]
                scale, shift = _folded_batch_norm(members, i + 1, stack)
                self.layers.append((_transposed(linear), bias, scale, shift))
            last = len(blocks) - 1
            self.head = (
                _transposed(stack(lambda m: m.mlp[last].weight)),
                stack(lambda m: m.mlp[last].bias)[:, None, :],
            )

    @classmethod
    def from_model(cls, model) -> NumpyNetwork:
        """The numpy network of `model`; ValueError when it is not one this class knows how to run."""
        from mlops_assets.ml.model import SeedEnsemble, TabularNet

        if isinstance(model, SeedEnsemble):
            members, ensemble = list(model.members), True
        elif isinstance(model, TabularNet):
            members, ensemble = [model], False
        else:
            raise ValueError(f"no numpy version of {type(model).__name__}")
        if not members or any(_structure(m) != _structure(members[0]) for m in members):
            raise ValueError("the ensemble's members differ in structure")
        if not _known_layout(members[0]):
            raise ValueError("an MLP of other layers than Linear, BatchNorm1d, ReLU, Dropout")
        return cls(members, ensemble)

    def __call__(self, codes: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """float64 probabilities, one per row (as the service's torch path: sigmoid of the logits)."""
        members = self.embeddings[0].shape[0]
        rows = len(codes)
        parts = [table[:, codes[:, j]] for j, table in enumerate(self.embeddings)]
        parts.append(
            np.broadcast_to(numbers.astype(np.float32, copy=False), (members, rows, numbers.shape[1]))
        )
        inputs = np.concatenate(parts, axis=2)
        weight, bias = self.wide
        logits = inputs @ weight + bias
        if self.head is not None:
            hidden = inputs
            for weight, bias, scale, shift in self.layers:
                hidden = np.maximum((hidden @ weight + bias) * scale + shift, np.float32(0))
            weight, bias = self.head
            logits = logits + (hidden @ weight + bias)
        logits = logits[:, :, 0]
        if self.ensemble:
            mean = _sigmoid(logits).mean(axis=0, dtype=np.float32)
            clipped = np.clip(mean, np.float32(LOGIT_EPS), np.float32(1 - LOGIT_EPS))
            logits = np.log(clipped / (np.float32(1) - clipped))[None]
        return _sigmoid(logits[0]).astype(np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.float32(1) / (np.float32(1) + np.exp(-x))


def _transposed(weights: np.ndarray) -> np.ndarray:
    """(members, out, in) -> (members, in, out), contiguous: inputs @ it is each member's Linear."""
    return np.ascontiguousarray(weights.transpose(0, 2, 1))


def _folded_batch_norm(members: list, index: int, stack) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode BatchNorm1d as x * scale + shift (torch's inference kernel folds it the same way)."""
    import torch

    def scale_of(m) -> torch.Tensor:
        norm = m.mlp[index]
        return (1 / torch.sqrt(norm.running_var + norm.eps)) * norm.weight

    scale = stack(scale_of)
    shift = stack(lambda m: m.mlp[index].bias - m.mlp[index].running_mean * scale_of(m))
    return scale[:, None, :], shift[:, None, :]


MLP_BLOCK = ("Linear", "BatchNorm1d", "ReLU", "Dropout")  # TabularNet's hidden layer, `depth` times


def _structure(member) -> tuple:
    """What must match across members to stack them: layer kinds and weight shapes."""
    return tuple(
        (type(module).__name__, tuple(p.shape))
        for module in member.modules()
        for p in module.parameters(recurse=False)
    )


def _known_layout(member) -> bool:
    """TabularNet's MLP as this class runs it: hidden blocks of MLP_BLOCK, then one Linear."""
    if member.mlp is None:
        return True
    kinds = [type(module).__name__ for module in member.mlp]
    depth = (len(kinds) - 1) // len(MLP_BLOCK)
    return kinds == [*MLP_BLOCK * depth, "Linear"]


def max_difference(network: NumpyNetwork, model, cardinalities: list[int], width: int) -> float:
    """Largest |probability| difference from the eager model on random batches of 1 to 100 rows."""
    import torch

    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for rows in (1, 1, 2, 7, NUMPY_ROWS, 100):
        codes = torch.stack([torch.randint(0, c, (rows,), generator=generator) for c in cardinalities], 1)
        numbers = torch.randn(rows, width, generator=generator) * 2
        with torch.inference_mode():
            expected = torch.sigmoid(model(codes, numbers)).numpy().astype("float64")
        got = network(codes.numpy(), numbers.numpy())
        if got.shape != expected.shape or not np.isfinite(got).all():
            return float("inf")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
