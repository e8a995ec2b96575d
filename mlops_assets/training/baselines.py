"""How the scikit-learn baselines travel through MLflow."""

# Types of our own pipelines that skops must be told to trust (we wrote the files ourselves).
SKOPS_TRUSTED = [
    "mlops_assets.ml.baselines._spell",
    "numpy.dtype",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
]


def pip_requirements() -> list[str]:
    """What a baseline needs to load, pinned to what trained it. Given rather than inferred: MLflow's
    inference loads the model in a child process to see what it imports, which cost two thirds of the
    baselines step (about 15 s a model on 2 cores)."""
    import importlib.metadata as md

    packages = ("scikit-learn", "skops", "numpy", "pandas", "scipy", "mlflow")
    # The pipelines' first step spells categories with mlops_assets.ml.baselines._spell.
    return [f"{name}=={md.version(name)}" for name in packages] + ["mlops-assets"]
