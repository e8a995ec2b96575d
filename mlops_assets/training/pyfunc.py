"""The PyTorch model as an MLflow pyfunc: preprocessing and weights travel together, so
`mlflow.pyfunc.load_model("models:/flight_delay@champion").predict(frame)` needs nothing else."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

BUNDLE = "bundle"
OUTPUT = "probability_late"


class FlightDelayModel(mlflow.pyfunc.PythonModel):
    """Probability that a flight arrives more than 15 minutes late, from its feature-service row."""

    def load_context(self, context) -> None:
        from mlops_assets.ml.bundle import ModelBundle

        self.bundle = ModelBundle.load(Path(context.artifacts[BUNDLE]), device="cpu")

    def predict(self, context, model_input, params=None):
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return pd.Series(self.bundle.predict(frame), index=frame.index, name=OUTPUT)


def pip_requirements() -> list[str]:
    import importlib.metadata as md

    packages = ("torch", "pandas", "numpy", "scikit-learn", "mlflow")
    return [f"{name}=={md.version(name)}" for name in packages] + ["mlops-assets"]


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


def log_pytorch_model(bundle_dir: Path, input_example, predictions):
    """Log the bundle under the active run as `model`; returns mlflow's ModelInfo."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=FlightDelayModel(),
        artifacts={BUNDLE: str(bundle_dir)},
        signature=signature(input_example, predictions),
        input_example=input_example,
        pip_requirements=pip_requirements(),
    )
