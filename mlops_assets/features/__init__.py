"""The feature computations (PySpark, and the DuckDB reference used to cross-check them) and the
point-in-time training-set helpers; the assets that run them are in `defs/features/`."""
