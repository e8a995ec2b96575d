"""Load the code location in a fresh process and report which heavy libraries that imported."""

import json
import sys

import mlops_assets.definitions as location

definitions = location.defs()
heavy = ("torch", "pyspark", "ray", "feast", "evidently", "mlflow", "great_expectations", "sklearn")
print(
    json.dumps(
        {
            "heavy": sorted(m for m in heavy if m in sys.modules),
            "assets": sorted(k.to_user_string() for k in definitions.resolve_all_asset_keys()),
        }
    )
)
