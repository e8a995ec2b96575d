"""Drift and model-quality reports (Evidently) and the retraining decision; the assets, sensor, schedule and
job are in `defs/monitoring/`."""
