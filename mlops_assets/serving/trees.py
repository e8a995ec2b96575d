"""The champion's boosted trees as arrays, for scoring a few flights without scikit-learn's per-tree loop.

`HistGradientBoostingClassifier.predict_proba` walks its trees one at a time from Python: with the
champion's 370 rounds, one flight costs about 4 ms of CPU, nearly all of it the loop's overhead, which
made the trees' service three times slower than the network's. Here every tree's nodes go into one set of
arrays, once, and a batch descends all trees at once: one numpy step per level of depth.

The rules are scikit-learn's own. Its input step (`_preprocess_X`) encodes each categorical column with
an OrdinalEncoder fitted on the training values (a value never seen becomes missing) and puts those
columns first; then (`_predictor.pyx`, `_predict_one_from_raw_data`) a missing value goes the node's
missing side, and a categorical split sends an encoded category in its left set left, one seen in
training but not in the set right. Here each categorical split holds one table over the raw values 0 to
255 (left, right or the missing side) that folds the encoder in. The sum of the leaves starts from the
model's baseline and goes through the logistic function. Reading the fitted structure uses members
scikit-learn keeps private (`_predictors`, `_baseline_prediction`, `_bin_mapper`, `_preprocessor`):
`CompiledTrees.from_model` checks the result against `predict_proba` on random batches and the service
keeps scikit-learn's path when they differ (or the members have changed), and
tests/test_serving_trees.py fails on such a change.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-9  # the same float64 sums in another order
COMPILED_ROWS = 16  # up to this many rows the arrays score (3x faster at 16); at 100, scikit-learn is faster
CATEGORIES = 256  # scikit-learn's categories are bins of one byte
BITSET_WORD = 32


class CompiledTrees:
    """Probability of the positive class of a binary HistGradientBoostingClassifier, from its design
    matrix (the columns it was fitted on)."""

    def __init__(self, trees) -> None:
        if trees.n_trees_per_iteration_ != 1:
            raise ValueError("only a binary classifier's trees (one per round) are compiled")
        predictors = [iteration[0] for iteration in trees._predictors]
        known, feature_row = trees._bin_mapper.make_known_categories_bitsets()
        raw_column, encoded = _input_columns(trees)
        offsets = np.cumsum([0, *(len(p.nodes) for p in predictors)])
        nodes = np.concatenate([p.nodes for p in predictors])
        shift = np.repeat(offsets[:-1], [len(p.nodes) for p in predictors])
        self.roots = offsets[:-1].astype(np.intp)
        self.feature = raw_column[nodes["feature_idx"].astype(np.intp)]  # columns of the raw input
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.leaf = nodes["is_leaf"].astype(bool)
        self.value = np.where(self.leaf, nodes["value"], 0.0).astype(np.float64)
        self.left = np.where(self.leaf, np.arange(len(nodes)), nodes["left"] + shift).astype(np.intp)
        self.right = np.where(self.leaf, np.arange(len(nodes)), nodes["right"] + shift).astype(np.intp)
        self.categorical = nodes["is_categorical"].astype(bool) & ~self.leaf
        self.depth = int(nodes["depth"].max())
        self.baseline = float(np.asarray(trees._baseline_prediction).ravel()[0])
        # Where each raw value 0..255 goes at a categorical node (its row; row 0 for the others): 1 left,
        # 0 right, -1 the node's missing side (a value the encoder never saw is missing to the trees).
        splits = np.flatnonzero(self.categorical)
        self.side_row = np.zeros(len(nodes), dtype=np.intp)
        self.side_row[splits] = np.arange(1, len(splits) + 1)
        self.side = np.full((len(splits) + 1, CATEGORIES), -1, dtype=np.int8)
        tree_of = np.repeat(np.arange(len(predictors)), [len(p.nodes) for p in predictors])
        for row, index in enumerate(splits, start=1):
            column = int(nodes["feature_idx"][index])
            left_set = _members(predictors[tree_of[index]].raw_left_cat_bitsets[nodes["bitset_idx"][index]])
            seen = _members(known[feature_row[column]])
            by_code = np.where(left_set, 1, np.where(seen, 0, -1))
            values = encoded[column]
            self.side[row, values.astype(np.intp)] = by_code[: len(values)]

    @classmethod
    def from_model(cls, trees, width: int) -> CompiledTrees:
        """Compiled and checked against `trees.predict_proba` (ValueError when they differ)."""
        compiled = cls(trees)
        difference = max_difference(compiled, trees, width)
        if not difference <= TOLERANCE:
            raise ValueError(f"the compiled trees differ from scikit-learn's by {difference:.3g}")
        return compiled

    def __call__(self, x: np.ndarray) -> np.ndarray:
        values = np.asarray(x, dtype=np.float64)
        rows = np.arange(len(values))[:, None]
        node = np.broadcast_to(self.roots, (len(values), len(self.roots))).copy()
        for _ in range(self.depth):
            value = values[rows, self.feature[node]]
            missing = np.isnan(value)
            numeric_left = value <= self.threshold[node]
            # A value that is not one of 0..255 was never seen in training (checked when compiled): missing.
            known = (value >= 0) & (value < CATEGORIES) & (value == np.floor(value))
            category = np.where(known, value, 0).astype(np.intp)
            side = np.where(known, self.side[self.side_row[node], category], -1)
            categorical_left = np.where(side < 0, self.missing_left[node], side == 1)
            go_left = np.where(
                missing,
                self.missing_left[node],
                np.where(self.categorical[node], categorical_left, numeric_left),
            )
            node = np.where(go_left, self.left[node], self.right[node])
        raw = self.baseline + self.value[node].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-raw))


def _input_columns(trees) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Which raw column each column the trees split on is, and the raw values each encoded categorical
    column's codes stand for (code k: the k-th; ValueError unless they are integers 0..255)."""
    width = trees.n_features_in_
    if trees._preprocessor is None:  # no categorical column: the input as it is
        return np.arange(width), {}
    categorical = np.asarray(trees.is_categorical_, dtype=bool)
    raw_column = np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])
    encoder = trees._preprocessor.named_transformers_["encoder"]
    encoded = {}
    for code_column, values in enumerate(encoder.categories_):
        values = np.asarray(values, dtype=np.float64)
        values = values[~np.isnan(values)]
        if ((values < 0) | (values >= CATEGORIES) | (values != np.floor(values))).any():
            raise ValueError(f"categorical column {raw_column[code_column]} has values beyond 0..255")
        encoded[code_column] = values
    return raw_column, encoded


def _members(bitset: np.ndarray) -> np.ndarray:
    """The 256 categories' membership in a scikit-learn bitset (8 words of 32 bits)."""
    categories = np.arange(CATEGORIES)
    return ((bitset[categories // BITSET_WORD] >> (categories % BITSET_WORD)) & 1).astype(bool)


def max_difference(compiled: CompiledTrees, trees, width: int) -> float:
    """Largest |probability| difference from `predict_proba` on random batches of 1 to 100 rows: every
    category of every categorical column (and unknown and missing ones), numbers around the thresholds,
    missing numbers."""
    generator = np.random.default_rng(1)
    categorical = np.asarray(trees.is_categorical_, dtype=bool)
    worst = 0.0
    for rows in (1, 1, 2, 7, COMPILED_ROWS, 100):
        x = generator.normal(size=(rows, width)) * 2
        x[:, categorical] = generator.integers(-1, CATEGORIES, size=(rows, int(categorical.sum())))
        x[generator.random((rows, width)) < 0.05] = np.nan
        x = x.astype(np.float32)
        expected = trees.predict_proba(x)[:, 1]
        got = compiled(x)
        if got.shape != expected.shape or not np.isfinite(got).all():
            return float("inf")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
