"""The training stage: tune, train, judge and register the flight-delay model.

models/tuned_hyperparameters  Ray Tune (ASHA) over the PyTorch model; trials are nested MLflow runs
models/baselines              logistic regression and HistGradientBoosting on the same columns and split
models/flight_delay_model     the final PyTorch run with the best configuration, an MLflow pyfunc
models/model_evaluation       new model, champion and baselines on the same temporal holdout
models/registered_model       MLflow registry: `challenger` always, `champion` only through the gate

One module per asset beside this one. Each asset writes a small JSON record to the lake
(`models/<name>.json`, training/records.py) that the next one reads, so the chain works the same against a
local folder or S3. Tuning and training run in the Dagster pool `gpu`. A run works on one training set:
each asset records its identity (`training_set/*` metadata) and refuses upstreams that recorded another
one, or whose record another run replaced (lib/lineage.py).
"""

import dagster as dg

from mlops_assets.defs.training.baselines import baselines
from mlops_assets.defs.training.flight_delay_model import flight_delay_model
from mlops_assets.defs.training.model_evaluation import model_evaluation
from mlops_assets.defs.training.registered_model import registered_model
from mlops_assets.defs.training.tuned_hyperparameters import tuned_hyperparameters


def build_training_assets() -> list[dg.AssetsDefinition]:
    return [tuned_hyperparameters, baselines, flight_delay_model, model_evaluation, registered_model]
