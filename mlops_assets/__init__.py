"""mlops_assets: a declarative MLOps platform built as one Dagster asset graph."""
