"""The feature computations (PySpark, and the DuckDB reference used to cross-check them), what they read
from the warehouse and how their files are published, the online store's windows, and the training set
(its point-in-time build and its identity); the assets that run them are in `defs/features/`."""
