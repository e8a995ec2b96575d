"""Run as a script (a fresh interpreter): load the champion by its alias and score a Parquet file.

usage: load_champion.py TRACKING_URI ROWS.parquet  ->  prints {"version": ..., "probabilities": [...]}
"""

import json
import sys

import mlflow
import pandas as pd
from mlflow import MlflowClient


def main(tracking_uri: str, rows: str) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    model = mlflow.pyfunc.load_model("models:/flight_delay@champion")
    version = str(MlflowClient().get_model_version_by_alias("flight_delay", "champion").version)
    probabilities = model.predict(pd.read_parquet(rows))
    print(json.dumps({"version": version, "probabilities": [float(p) for p in probabilities]}))


if __name__ == "__main__":
    main(*sys.argv[1:])
