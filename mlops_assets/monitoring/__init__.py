"""Drift and model-quality reports (Evidently) and the retraining decision; the assets, sensor, schedule and
job are in `defs/monitoring/`.

records.py      where each day's monitoring record and report go in the lake, and what they read
drift.py        the day's drift against the champion's training data
performance.py  the day's measured quality, once its outcomes are known
reports.py      the Evidently reports behind both, and Evidently's drift statistics without the report
pages.py        the day's drift page (the record's figures), in place of Evidently's report until rendered
report_cli.py   `mlops report html`: Evidently's report of a day, rendered on demand
retraining.py   when to retrain, why and on which window
"""
