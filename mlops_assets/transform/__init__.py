"""The dbt project and its manifest; the dbt assets are in `defs/transform/`."""
