"""The asset keys of the graph (the public contract of DESIGN.md), each named once.

Stages refer to each other's assets through these names, so a key is spelled in one place.
"""

from __future__ import annotations

import dagster as dg

# transform (dbt models; their keys come from the dbt manifest)
FCT_FLIGHTS = dg.AssetKey(["fct_flights"])
STG_WEATHER = dg.AssetKey(["stg_weather"])

# features
FLIGHT_FEATURES = dg.AssetKey(["features", "flight_features"])
FEATURE_VIEWS = dg.AssetKey(["features", "feature_views"])
ONLINE_STORE = dg.AssetKey(["features", "online_store"])
TRAINING_SET = dg.AssetKey(["features", "training_set"])

# training
TUNED = dg.AssetKey(["models", "tuned_hyperparameters"])
BASELINES = dg.AssetKey(["models", "baselines"])
MODEL = dg.AssetKey(["models", "flight_delay_model"])
EVALUATION = dg.AssetKey(["models", "model_evaluation"])
REGISTERED = dg.AssetKey(["models", "registered_model"])

# serving and monitoring
BATCH_PREDICTIONS = dg.AssetKey(["predictions", "batch_predictions"])
DRIFT_REPORT = dg.AssetKey(["monitoring", "drift_report"])
MODEL_PERFORMANCE = dg.AssetKey(["monitoring", "model_performance"])
SHADOW_COMPARISON = dg.AssetKey(["monitoring", "shadow_comparison"])

ML_OWNERS = ["team:ml-platform"]
DATA_OWNERS = ["team:data-platform"]
