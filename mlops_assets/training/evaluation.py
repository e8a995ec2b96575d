"""Judging a new model: its figures on the holdout beside the champion's and the baselines', and the
ceiling above which a holdout ROC-AUC is leakage rather than skill."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_assets.resources.tracking import MlflowResource
    from mlops_assets.training.data import TrainingData

LEAKAGE_CEILING = 0.85  # FACTS: leakage-free features reach ~0.72 ROC-AUC; 0.90+ means the future leaked in
EVALUATION_ARTIFACTS = "evaluation"  # the folder of the model's run that holds the evaluation's files


def holdout_inputs(data: TrainingData) -> tuple[Any, Any]:
    """(model inputs, 0/1 labels) of the holdout days: what every model is scored on, in the graph and
    in a reproduction."""
    from mlops_assets.ml.data import LABEL
    from mlops_assets.training.data import model_input_frame

    holdout = data.split.holdout
    inputs = model_input_frame(holdout, data.categorical, data.numeric)
    return inputs, holdout[LABEL].astype(int).to_numpy()


def calibration_plot(curves: dict[str, Any], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, table in curves.items():
        axis.plot(table["mean_predicted"], table["observed"], marker="o", label=name)
    axis.set(
        xlabel="predicted probability of a late arrival",
        ylabel="observed late rate",
        title="Calibration on the holdout",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def score_models(
    mlflow: MlflowResource, frame, model: dict[str, Any], baselines: dict[str, Any]
) -> dict[str, tuple[Any, dict]]:
    """Probabilities on `frame` from the new model, the champion (if any) and the baselines (their
    lake records)."""
    import mlflow as mlflow_api

    from mlops_assets.training.registry import CHAMPION, alias_version

    scores = {
        "candidate": (mlflow_api.pyfunc.load_model(model["model_uri"]).predict(frame).to_numpy(), model)
    }
    champion = alias_version(mlflow.client(), mlflow.model_name, CHAMPION)
    if champion is not None:
        uri = f"models:/{mlflow.model_name}@{CHAMPION}"
        scores["champion"] = (
            mlflow_api.pyfunc.load_model(uri).predict(frame).to_numpy(),
            {"version": champion},
        )
    for kind, entry in baselines["models"].items():
        pipeline = mlflow_api.sklearn.load_model(entry["model_uri"])
        scores[kind] = (pipeline.predict_proba(frame)[:, 1], entry)
    return scores
