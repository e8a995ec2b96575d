"""Landing-zone contracts, CSV parsing, row rules, quarantine and staging: the ingestion logic, free of
Dagster asset definitions (those are in `defs/ingestion/`)."""
