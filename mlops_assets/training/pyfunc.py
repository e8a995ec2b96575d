"""The challenger as an MLflow pyfunc, whichever family won (the PyTorch network or the boosted trees):
preprocessing and model travel together, so
`mlflow.pyfunc.load_model("models:/flight_delay@champion").predict(frame)` needs nothing else. The
unwrapped python model's `bundle` is what serving scores with (`preprocessor` plus the model)."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

from mlops_assets.training.challenger import PYTORCH, TREES

BUNDLE = "bundle"
OUTPUT = "probability_late"


class FlightDelayModel(mlflow.pyfunc.PythonModel):
    """Probability that a flight arrives more than 15 minutes late, from its feature-service row
    (the PyTorch network)."""

    def load_context(self, context) -> None:
        from mlops_assets.ml.bundle import ModelBundle

        self.bundle = ModelBundle.load(Path(context.artifacts[BUNDLE]), device="cpu")

    def predict(self, context, model_input, params=None):
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return pd.Series(self.bundle.predict(frame), index=frame.index, name=OUTPUT)


class BoostedFlightDelayModel(FlightDelayModel):
    """The same contract from gradient-boosted trees (mlops_assets.ml.boosting.BoostedModel)."""

    def load_context(self, context) -> None:
        from mlops_assets.ml.boosting import BoostedModel

        self.bundle = BoostedModel.load(Path(context.artifacts[BUNDLE]))


PYTHON_MODELS = {PYTORCH: FlightDelayModel, TREES: BoostedFlightDelayModel}
# What each family needs to load (the trees do not import torch).
PACKAGES = {
    PYTORCH: ("torch", "pandas", "numpy", "scikit-learn", "mlflow"),
    TREES: ("pandas", "numpy", "scipy", "scikit-learn", "joblib", "mlflow"),
}


def pip_requirements(family: str = PYTORCH) -> list[str]:
    import importlib.metadata as md

    return [f"{name}=={md.version(name)}" for name in PACKAGES[family]] + ["mlops-assets"]


def signature(input_example, predictions):
    """The signature inferred from the example, with the coded features (hour, weekday) declared `Any`:
    the training set holds them as integers, `model_input_frame` and the service as strings, and the
    preprocessor spells both as the same category. Numeric columns stay double, which MLflow's schema
    enforcement accepts integer columns for."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    from mlops_assets.ml.data import CODED_FEATURES

    inferred = infer_signature(input_example, predictions)
    columns = [
        ColSpec(AnyType(), column.name, required=column.required) if column.name in CODED_FEATURES else column
        for column in inferred.inputs.inputs
    ]
    return ModelSignature(inputs=Schema(columns), outputs=inferred.outputs)


def log_flight_delay_model(bundle_dir: Path, input_example, predictions, family: str = PYTORCH):
    """Log the saved bundle of `family` under the active run as `model`; returns mlflow's ModelInfo."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=PYTHON_MODELS[family](),
        artifacts={BUNDLE: str(bundle_dir)},
        signature=signature(input_example, predictions),
        input_example=input_example,
        pip_requirements=pip_requirements(family),
    )
