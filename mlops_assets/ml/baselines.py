"""The baselines every model is judged against: scikit-learn pipelines on the same columns and split.

Each is one fitted `Pipeline` (preprocessing included) so that it is logged and loaded as one MLflow model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.ml.preprocessing import spell_category

BASELINES = ("logistic_regression", "hist_gradient_boosting")


def spell_categories(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for column in categorical:
        out[column] = out[column].map(spell_category, na_action="ignore").astype("object")
    return out


def _spell(frame: pd.DataFrame, categorical: tuple[str, ...]) -> pd.DataFrame:
    return spell_categories(frame, list(categorical))


def _preprocessor(kind: str, categorical: list[str], numeric: list[str]):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if kind == "logistic_regression":
        numbers = Pipeline(
            [("impute", SimpleImputer(strategy="median", add_indicator=True)), ("scale", StandardScaler())]
        )
        encode = OneHotEncoder(handle_unknown="ignore", min_frequency=5)
    else:  # trees split on raw values and treat NaN natively
        numbers = "passthrough"
        encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    return ColumnTransformer(
        [("categorical", encode, categorical), ("numeric", numbers, numeric)], verbose_feature_names_out=False
    )


def fit_baseline(
    kind: str,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    categorical: list[str],
    numeric: list[str],
    label: str,
    seed: int = 0,
    grid: tuple | None = None,
):
    """A fitted Pipeline [spell categories, encode, estimator] and, for the trees, the grid's points
    (best first; empty for logistic regression).

    The trees are the gate's floor, so they get a fair chance: every point of `grid` (default
    boosting.GRID) is fitted on the training days, early-stopped on `valid` (the network's early-stopping
    days) and the one with the best validation ROC-AUC is kept. The holdout never chooses."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from mlops_assets.ml.boosting import GRID, best_round, fit_threads

    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
    spell = FunctionTransformer(_spell, kw_args={"categorical": tuple(categorical)})
    columns = [*categorical, *numeric]
    encode = _preprocessor(kind, categorical, numeric)
    x_train = encode.fit_transform(spell.fit_transform(train[columns]))
    y_train = train[label].astype(int).to_numpy()
    if kind == "logistic_regression":
        estimator = LogisticRegression(max_iter=2000, C=0.5)
        estimator.fit(x_train, y_train)
        return Pipeline([("spell", spell), ("encode", encode), ("model", estimator)]), []
    x_valid = encode.transform(spell.transform(valid[columns]))
    y_valid = valid[label].astype(int).to_numpy()
    fitted = []
    for params in grid or GRID:
        trees = _trees(params, len(categorical), seed)
        with fit_threads():
            trees.fit(x_train, y_train, X_val=x_valid, y_val=y_valid)
        auc = float(roc_auc_score(y_valid, trees.predict_proba(x_valid)[:, 1]))
        fitted.append((auc, trees, params))
    fitted.sort(key=lambda item: -item[0])
    points = [{**params.to_dict(), "iterations": best_round(trees), "valid_auc": auc}
              for auc, trees, params in fitted]  # fmt: skip
    return Pipeline([("spell", spell), ("encode", encode), ("model", fitted[0][1])]), points


def _trees(params, categories: int, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlops_assets.ml.boosting import MAX_ITER, PATIENCE

    return HistGradientBoostingClassifier(
        **params.to_dict(),
        max_iter=MAX_ITER,
        categorical_features=list(range(categories)),
        early_stopping=True,
        n_iter_no_change=PATIENCE,
        random_state=seed,
    )


def predict_baseline(pipeline, frame: pd.DataFrame) -> np.ndarray:
    return pipeline.predict_proba(frame)[:, 1]
