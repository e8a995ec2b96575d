"""The boosted champion's trees as arrays (serving/trees.py) give scikit-learn's probabilities: on a model
fitted with categorical columns (one with gaps among its codes) and missing values, for seen, unseen,
negative and missing categories and missing numbers, one row at a time and in batches. The arrays are
read from members scikit-learn keeps private: this test fails when a scikit-learn upgrade changes them
(the service then falls back to scikit-learn's own path, logged)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def fitted():
    from sklearn.ensemble import HistGradientBoostingClassifier

    generator = np.random.default_rng(3)
    rows = 4000
    codes = np.stack([generator.integers(0, n, rows) for n in (3, 12, 40)], axis=1)
    codes[:, 1] *= 2  # even codes only: an odd one was never seen, as a vocabulary's unused code
    numbers = generator.normal(size=(rows, 5))
    numbers[generator.random(numbers.shape) < 0.1] = np.nan
    signal = (codes[:, 1] % 3 == 0) * 1.2 + np.nan_to_num(numbers[:, 0]) - 0.5 * (codes[:, 2] > 30)
    labels = (signal + generator.logistic(size=rows) > 0.5).astype(int)
    x = np.hstack([codes, numbers]).astype(np.float32)
    categorical = np.array([True] * 3 + [False] * 5)
    trees = HistGradientBoostingClassifier(
        max_iter=60, max_leaf_nodes=15, categorical_features=categorical, early_stopping=False, random_state=0
    ).fit(x, labels)
    return trees, x


def inputs(x: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """Rows like the training rows, with categories never seen (beyond the fitted ones), negative
    categories and missing values in every column."""
    rows = x[generator.integers(0, len(x), 600)].copy()
    rows[:100, 2] = generator.integers(40, 256, 100)  # unseen categories
    rows[300:400, 1] = generator.integers(0, 12, 100) * 2 + 1  # unseen codes among the seen ones
    rows[100:150, 1] = -1  # a negative category: the missing side
    rows[150:250][generator.random((100, rows.shape[1])) < 0.3] = np.nan
    rows[250:300, 3:] = generator.normal(size=(50, 5)) * 10  # numbers far out
    return rows


def test_the_compiled_trees_give_scikit_learns_probabilities(fitted):
    from mlops_assets.serving.trees import TOLERANCE, CompiledTrees

    trees, x = fitted
    compiled = CompiledTrees.from_model(trees, x.shape[1])
    assert compiled.categorical.any() and compiled.depth > 1
    rows = inputs(x, np.random.default_rng(5))
    expected = trees.predict_proba(rows)[:, 1]
    single = np.concatenate([compiled(rows[i : i + 1]) for i in range(len(rows))])
    np.testing.assert_allclose(single, expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(compiled(rows), expected, rtol=0, atol=TOLERANCE)
    assert expected.std() > 0.05  # the rows reach different leaves


def test_trees_that_do_not_match_are_refused(fitted):
    """A compiled model that differs from scikit-learn's is refused (the service keeps scikit-learn's)."""
    from mlops_assets.serving.trees import CompiledTrees

    trees, x = fitted

    class Shifted(CompiledTrees):
        def __call__(self, rows):
            return super().__call__(rows) + 1e-6

    with pytest.raises(ValueError, match="differ from scikit-learn's"):
        Shifted.from_model(trees, x.shape[1])
