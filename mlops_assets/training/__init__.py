"""Training-stage logic around the core in `ml/`: the training data, Ray Tune, the MLflow pyfunc and the
registry rules. The assets are in `defs/training/`."""
