"""One folder per stage of the graph; each exposes `build_*` functions that return its definitions."""
