"""How the scikit-learn baselines travel through MLflow."""

# Types of our own pipelines that skops must be told to trust (we wrote the files ourselves).
SKOPS_TRUSTED = [
    "mlops_assets.ml.baselines._spell",
    "numpy.dtype",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]
