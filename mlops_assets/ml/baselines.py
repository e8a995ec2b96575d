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
):
    """A fitted Pipeline [spell categories, encode, estimator]; the tree uses `valid` for early stopping,
    like the network, so both stop on the same temporal validation days."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

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
    else:
        estimator = HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=1000,
            max_leaf_nodes=31,
            l2_regularization=1.0,
            categorical_features=list(range(len(categorical))),
            early_stopping=True,
            n_iter_no_change=30,
            random_state=seed,
        )
        x_valid = encode.transform(spell.transform(valid[columns]))
        estimator.fit(x_train, y_train, X_val=x_valid, y_val=valid[label].astype(int).to_numpy())
    return Pipeline([("spell", spell), ("encode", encode), ("model", estimator)])


def predict_baseline(pipeline, frame: pd.DataFrame) -> np.ndarray:
    return pipeline.predict_proba(frame)[:, 1]
