"""The drift report's fast path (issue 14): Evidently's own statistical tests column by column, without
the report's widgets, give every figure a plain Evidently DataDriftPreset report gives on the same frames;
the day's page and Evidently's report, rendered on demand from the inputs the asset recorded.

Small synthetic frames shaped as the model inputs (categories with missing values, numbers with NaN and
infinities, a column empty on the day, a shifted column), so each test takes seconds.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from mlops_assets.lib.keys import DRIFT_REPORT
from mlops_assets.monitoring.drift import (
    DriftThresholds,
    Reference,
    drift_features,
    drift_of_day,
    inputs_key,
    render_drift_html,
)
from mlops_assets.monitoring.records import read_records, record_key
from mlops_assets.monitoring.reports import PREDICTION, DriftReference, drift_summary
from mlops_assets.resources.storage import LocalObjectStore
from mlops_assets.serving.batch import predictions_key

DAY = dt.date(2013, 3, 8)
SHIFTED = "weather_hourly__temp"  # moved by several reference standard deviations on the day
EMPTY = "weather_hourly__wind_gust"  # no value on the day (a calm day)


def model_inputs(rows: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "carrier": rng.choice(["UA", "B6", "EV", "DL", "AA"], rows, p=[0.3, 0.25, 0.2, 0.15, 0.1]),
            "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
            "dest": rng.choice([f"D{i:02d}" for i in range(40)], rows),
            "flight_schedule__sched_dep_hour_local": rng.integers(5, 23, rows).astype(str),
            "flight_schedule__day_of_week": rng.integers(0, 7, rows).astype(str),
            "flight_schedule__month": np.full(rows, 3.0),
            SHIFTED: rng.normal(40 + shift, 10, rows),
            EMPTY: rng.gamma(2.0, 5.0, rows),
            "weather_hourly__precip": np.where(rng.random(rows) < 0.8, 0.0, rng.exponential(0.1, rows)),
            "delay_stats_carrier__late_rate_7d": rng.beta(2, 8, rows) + shift / 200,
            "delay_stats_origin__late_rate_1d": rng.beta(2, 6, rows),
            "flight_schedule__distance": rng.integers(100, 2500, rows).astype(float),
        }
    ).astype({"carrier": object, "origin": object, "dest": object})
    frame.loc[rng.random(rows) < 0.05, "dest"] = None
    frame.loc[rng.random(rows) < 0.1, "delay_stats_origin__late_rate_1d"] = np.nan
    frame[PREDICTION] = rng.beta(2, 6, rows) + shift / 100
    return frame


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = model_inputs(3000, seed=0, shift=0.0)
    current = model_inputs(600, seed=1, shift=15.0)
    current[EMPTY] = np.nan
    current.loc[3, "weather_hourly__precip"] = np.inf
    return reference, current


def plain_evidently(reference, current, categorical, numeric, thresholds) -> dict[str, float]:
    """A plain Evidently report, as its documentation writes one: every ValueDrift's value."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=[*numeric, PREDICTION], categorical_columns=categorical)
    columns = [*categorical, *numeric, PREDICTION]
    report = Report(
        [
            DataDriftPreset(
                columns=[*categorical, *numeric],
                num_method="wasserstein",
                num_threshold=thresholds.numeric_threshold,
                cat_method="jensenshannon",
                cat_threshold=thresholds.categorical_threshold,
            ),
            ValueDrift(column=PREDICTION, method="wasserstein", threshold=thresholds.numeric_threshold),
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    metrics = snapshot.dict()["metrics"]
    return {m["config"]["column"]: m["value"] for m in metrics if m["config"]["type"].endswith(":ValueDrift")}


def test_the_fast_path_gives_every_figure_of_a_plain_evidently_report(frames):
    reference, current = frames
    thresholds = DriftThresholds()
    categorical, numeric = drift_features(reference)
    summary = drift_summary(
        DriftReference(reference),
        current,
        categorical,
        numeric,
        thresholds.numeric_threshold,
        thresholds.categorical_threshold,
    )
    assert summary.extra["empty"] == [EMPTY]  # Evidently refuses an empty column: left out of both
    kept = [c for c in numeric if c != EMPTY]
    values = plain_evidently(reference, current, categorical, kept, thresholds)

    assert summary.scores == {c: values[c] for c in [*categorical, *kept]}  # every score, to the last bit
    assert summary.prediction_drift == values[PREDICTION]
    # (The preset's own DriftedColumnsCount is not the reference: it scores columns another way, keeping
    # infinities, so a single inf there makes weather_hourly__precip "drift".)
    drifted = [c for c, v in values.items() if c != PREDICTION and v >= summary.thresholds[c]]
    assert summary.drifted == drifted and summary.drift_share == len(drifted) / len(summary.scores)
    assert SHIFTED in summary.drifted and summary.prediction_drifted
    assert 0 < summary.drift_share < 1
    assert set(summary.methods.values()) == {"wasserstein", "jensenshannon"}


@pytest.fixture
def day_in_lake(tmp_path, frames):
    """A lake with a reference sample and a day of batch predictions, and the day's drift record."""
    reference, current = frames
    lake = LocalObjectStore(root=str(tmp_path / "lake"))
    lake.write_parquet("monitoring/reference/v1_3000.parquet", reference)
    lake.write_parquet(predictions_key(DAY), current.assign(model_version="1", flight_id=range(len(current))))
    sample = Reference(key="monitoring/reference/v1_3000.parquet", sample=DriftReference(reference))
    record = drift_of_day(lake, sample, DAY, DriftThresholds())
    lake.write_bytes(record_key(DRIFT_REPORT, DAY), json.dumps(record).encode())
    return lake, record


def test_the_day_links_a_page_of_its_figures_and_the_command_for_evidentlys_report(day_in_lake):
    lake, record = day_in_lake
    assert record["report_html"] == lake.uri(record_key(DRIFT_REPORT, DAY, "html"))
    page = lake.read_bytes(record_key(DRIFT_REPORT, DAY, "html")).decode()
    assert page.rstrip().endswith("</html>") and len(page) < 100_000
    assert f"mlops report html monitoring/drift_report {DAY}" in page
    assert all(feature in page for feature in record["scores"])
    # The report's inputs are beside the records, not among them: readers see the day's record only.
    assert lake.exists(inputs_key(DAY))
    assert [r["day"] for r in read_records(lake, DRIFT_REPORT)] == [DAY.isoformat()]


def test_evidentlys_report_is_rendered_on_demand_with_the_records_figures(day_in_lake):
    lake, record = day_in_lake
    uri, same = render_drift_html(lake, DAY)
    assert uri == record["report_html"] and same
    html = lake.read_bytes(record_key(DRIFT_REPORT, DAY, "html")).decode()
    # Evidently's own page: its JavaScript bundle, drawing its dashboard of the report's widgets.
    assert "window.drawDashboard(" in html and len(html) > 1_000_000
    assert html.rstrip().endswith("</html>")
    assert "Dataset Drift" in html and SHIFTED in html


def test_the_command_renders_a_day_of_a_home(day_in_lake, tmp_path, monkeypatch, capsys):
    from mlops_assets.cli import main

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    assert main(["report", "html", "monitoring/drift_report", DAY.isoformat()]) == 0
    assert "drift report of 2013-03-08" in capsys.readouterr().out
    html = (tmp_path / "lake" / "monitoring" / "drift_report" / f"{DAY}.html").read_text()
    assert "window.drawDashboard(" in html
    with pytest.raises(SystemExit, match="materialize monitoring/drift_report"):
        main(["report", "html", "monitoring/drift_report", "2013-03-09"])


def test_a_report_rendered_after_the_day_was_rescored_says_its_figures_differ(day_in_lake, frames):
    lake, record = day_in_lake
    _, current = frames
    rescored = current.assign(model_version="2", flight_id=range(len(current)))
    lake.write_parquet(predictions_key(DAY), rescored.assign(**{SHIFTED: rescored[SHIFTED] + 30}))
    assert render_drift_html(lake, DAY) == (record["report_html"], False)
