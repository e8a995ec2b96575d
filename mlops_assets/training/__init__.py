"""Training-stage logic around the core in `ml/`: what the assets share (chain.py), the lake records they
pass along (records.py), the training data, Ray Tune, the evaluation, the baselines' MLflow settings, the
MLflow pyfunc and the registry rules. The assets are in `defs/training/`, one module each."""
