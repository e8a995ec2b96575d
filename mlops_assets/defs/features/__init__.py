"""Features stage: the Spark feature job (flight_features.py) as the asset `features/flight_features`."""
