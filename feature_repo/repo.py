"""Module-level objects for the `feast` CLI (`feast apply`, `feast materialize`, `feast ui`).

The platform itself never imports this file: FeastResource calls `build_repo` with the resolved lake.
For the CLI, the lake comes from the environment, as the profile YAML's ${VARS} do:

    export MLOPS_HOME=$PWD/data FEAST_PROJECT=flight_delay
    feast -c feature_repo -f profiles/local.yaml apply
    # production: MLOPS_FEATURE_SOURCE_ROOT=s3://$MLOPS_S3_BUCKET/lake/features, -f profiles/production.yaml
"""

import os

from flight_delay_repo import build_repo

_root = os.environ.get("MLOPS_FEATURE_SOURCE_ROOT") or os.path.join(
    os.environ.get("MLOPS_HOME", os.path.join(os.getcwd(), "..", "data")), "lake", "features"
)
_objects = build_repo(_root, os.environ.get("MLOPS_S3_ENDPOINT_URL") or None)

for _obj in _objects.all():
    globals()[_obj.name.replace("-", "_")] = _obj
