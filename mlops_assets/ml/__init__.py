"""The training core: data split, preprocessing, the PyTorch model, its fit loop and metrics.

Importable with numpy, pandas, torch and scikit-learn alone (no dagster, ray, mlflow or feast), so the same
code trains inside a Ray Tune trial, a Dagster step or a bare script on a GPU machine.
"""
