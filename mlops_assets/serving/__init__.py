"""Online prediction service: FastAPI over the Feast online store and the MLflow `champion`.

flights.py         request models, domain checks and the Feast entity row of a flight
features.py        online feature reads (Feast) -> the model-input arrays training uses
champion.py        the champion model of the registry, loaded whole and swapped atomically
prediction_log.py  every prediction, buffered in memory and written to the lake as Parquet
app.py             the FastAPI app (`create_app`), started by `mlops serve`
batch.py           a day's flights scored in batch (what predictions/batch_predictions runs)
"""
