"""What Dagster loads, one folder per stage in the order data flows. Each stage's `definitions.py` has
`build_definitions(settings) -> dg.Definitions` (assets, checks, sensors, schedules, jobs); the shared
resources come from `mlops_assets.resources.profiles`."""

STAGES = ("ingestion", "transform", "features", "training", "predictions", "monitoring")
