"""Each partition its own figures: after one ranged run (a single-run backfill, as the demo, `make year`
and the landing sensor's backlog move data), every day's materialization event in the Dagster instance
carries that day's metadata, equal to the day's own record in the lake, not the last day's.

Real parts: the champion of `champion_home` (conftest), Feast, MLflow, Evidently, on a copy of that
home (its lake and warehouse; MLflow is only read), so the session's other tests see it unchanged.
The features asset's per-day counts are tested with Spark in tests/test_flight_features.py.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.lib.calendar import partition_range_tags

pytestmark = pytest.mark.slow

DAYS = ("2013-01-19", "2013-01-20", "2013-01-21")  # inside the champion's window: features exist
ONLINE_STORE = dg.AssetKey(["features", "online_store"])
FEATURE_VIEWS = dg.AssetKey(["features", "feature_views"])
BATCH_PREDICTIONS = dg.AssetKey(["predictions", "batch_predictions"])
DRIFT_REPORT = dg.AssetKey(["monitoring", "drift_report"])
MODEL_PERFORMANCE = dg.AssetKey(["monitoring", "model_performance"])
RANGED = [ONLINE_STORE, BATCH_PREDICTIONS, DRIFT_REPORT, MODEL_PERFORMANCE]


def assets() -> list[dg.AssetsDefinition]:
    from mlops_assets.defs.features.feast_assets import build_feast_assets
    from mlops_assets.defs.monitoring.assets import build_monitoring_assets
    from mlops_assets.defs.predictions.assets import build_prediction_assets

    return [*build_feast_assets(), *build_prediction_assets(), *build_monitoring_assets()]


def resources(home: Path, champion_home: Path) -> dict[str, Any]:
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.tracking import MlflowResource
    from mlops_assets.resources.training_plan import TrainingPlan
    from mlops_assets.resources.warehouse import DuckDBWarehouse
    from tests.conftest import TRAINING_PLAN

    return {
        "feast": FeastResource(profile="local", home=str(home)),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{champion_home / 'mlflow' / 'mlflow.db'}"),
        "lake": LocalObjectStore(root=str(home / "lake")),
        "warehouse": DuckDBWarehouse(path=str(home / "warehouse.duckdb")),
        "training": TrainingPlan(home=str(home), **TRAINING_PLAN),
    }


@dataclass(frozen=True)
class Ranged:
    instance: dg.DagsterInstance
    run_id: str
    home: Path
    parts: dict[str, Any]


@pytest.fixture(scope="module")
def ranged(champion_home, tmp_path_factory):
    """One ranged run of the daily assets over DAYS, on a copy of the champion's home; the instance
    that recorded it, the home and the resources."""
    home = tmp_path_factory.mktemp("partition_metadata_home")
    shutil.copytree(
        champion_home, home, dirs_exist_ok=True, ignore=shutil.ignore_patterns("mlflow", "feast", "scratch")
    )
    parts = resources(home, champion_home)
    with dg.DagsterInstance.ephemeral() as instance:
        applied = dg.materialize(assets(), selection=[FEATURE_VIEWS], resources=parts, instance=instance)
        assert applied.success
        run = dg.materialize(
            assets(),
            selection=RANGED,
            resources=parts,
            instance=instance,
            tags=partition_range_tags(DAYS[0], DAYS[-1]),
        )
        assert run.success
        yield Ranged(instance, run.run_id, home, parts)


def events_by_day(ranged: Ranged, key: dg.AssetKey) -> dict[str, dict[str, Any]]:
    """The ranged run's materialization events of `key` as the instance stored them, one per day (a
    second one would be a defect)."""
    records = ranged.instance.fetch_materializations(key, limit=100).records
    records = [r for r in records if r.run_id == ranged.run_id]
    days = [r.asset_materialization.partition for r in records]
    assert sorted(days) == sorted(DAYS), (key, days)
    return {
        r.asset_materialization.partition: {k: v.value for k, v in r.asset_materialization.metadata.items()}
        for r in records
    }


def lake_record(home: Path, key: dg.AssetKey, day: str) -> dict[str, Any]:
    return json.loads((home / "lake" / "monitoring" / key.path[-1] / f"{day}.json").read_text())


def test_each_day_of_a_ranged_drift_report_carries_that_days_record(ranged):
    home = ranged.home
    events = events_by_day(ranged, DRIFT_REPORT)
    for day, metadata in events.items():
        record = lake_record(home, DRIFT_REPORT, day)
        assert metadata["drift_share"] == round(record["drift_share"], 4), day
        assert metadata["drifted_features"] == len(record["drifted"])
        assert metadata["prediction_drift"] == round(record["prediction_drift"], 4)
        assert metadata["current_rows"] == record["current_rows"]
        assert metadata["report"] == record["report_html"] and metadata["report"].endswith(f"{day}.html")
        scores = {k.removeprefix("drift/"): v for k, v in metadata.items() if k.startswith("drift/")}
        assert scores == {c: round(v, 4) for c, v in record["scores"].items()} and len(scores) > 20
        assert metadata["reference"].startswith("champion v1")  # range-wide: one reference for the run
        assert "by_day" in metadata
    # The days differ, so a flat line in the UI would be a defect, not the data.
    for name in ("mean_probability", "drift/weather_hourly__temp", "drift/delay_stats_carrier__late_rate_7d"):
        assert len({m[name] for m in events.values()}) == len(DAYS), name


def test_each_day_of_a_ranged_performance_report_carries_that_days_metrics(ranged):
    home = ranged.home
    events = events_by_day(ranged, MODEL_PERFORMANCE)
    for day, metadata in events.items():
        record = lake_record(home, MODEL_PERFORMANCE, day)
        for name in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"):
            assert metadata[name] == round(record["metrics"][name], 4), (day, name)
        assert metadata["labelled_flights"] == record["labelled_rows"]
        assert metadata["model_version"] == record["model_version"] == "1"
        assert metadata["report"] == record["report_html"]
    assert len({m["roc_auc"] for m in events.values()}) == len(DAYS)
    assert len({m["labelled_flights"] for m in events.values()}) == len(DAYS)


def test_each_day_of_ranged_batch_predictions_carries_its_own_counts(ranged):
    home = ranged.home
    events = events_by_day(ranged, BATCH_PREDICTIONS)
    for day, metadata in events.items():
        scored = pd.read_parquet(home / "lake" / "predictions" / "batch" / f"{day}.parquet")
        assert metadata["dagster/row_count"] == len(scored), day
        assert metadata["unscored"] == int(scored["probability_late"].isna().sum()) == 0
        assert metadata["mean_probability"] == round(float(scored["probability_late"].mean()), 4)
        assert metadata["path"].endswith(f"{day}.parquet")
        assert metadata["model_version"] == "1"  # range-wide: one champion scored the run
    assert len({m["dagster/row_count"] for m in events.values()}) == len(DAYS)


def online_values(home: Path, feast) -> dict[str, list]:
    """The online features of a few flights of the last day (what the service would read)."""
    schedule = pd.read_parquet(home / "lake" / "features" / "flight_schedule" / f"{DAYS[-1]}.parquet")
    rows = [
        {k: getattr(f, k) for k in ("flight_id", "carrier", "origin", "dest", "route")}
        for f in schedule.head(8).itertuples()
    ]
    return feast.online_features(rows, "flight_delay_v1")


def online_run(instance, parts: dict[str, Any], day: str) -> dict[str, Any]:
    """A run of the online store for one day; its event's metadata."""
    run = dg.materialize(
        assets(), selection=[ONLINE_STORE], resources=parts, instance=instance, partition_key=day
    )
    (event,) = run.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_run_of_an_earlier_day_leaves_the_newest_rows_online(ranged):
    """A late day's recompute reruns earlier days of the online store; Feast's SQLite store overwrites,
    so each run materializes on to the newest day already online."""
    from mlops_assets.features.online import MATERIALIZE_LOOKBACK, local_days_utc_span

    instance, home, parts = ranged.instance, ranged.home, ranged.parts
    newest = online_values(home, parts["feast"])
    metadata = online_run(instance, parts, DAYS[0])
    assert metadata["online_through"] == DAYS[-1] and metadata["partitions"] == f"{DAYS[0]}..{DAYS[0]}"
    assert online_values(home, parts["feast"]) == newest
    # What it prevents: the first day's window alone puts older delay statistics online.
    start, end = local_days_utc_span(DAYS[0], DAYS[0])
    parts["feast"].materialize(start - MATERIALIZE_LOOKBACK, end - dt.timedelta(microseconds=1))
    assert online_values(home, parts["feast"]) != newest
    online_run(instance, parts, DAYS[-1])
    assert online_values(home, parts["feast"]) == newest


def test_each_day_of_a_ranged_online_store_run_counts_what_a_run_of_that_day_alone_counts(ranged):
    events = events_by_day(ranged, ONLINE_STORE)
    for day in DAYS:
        with dg.DagsterInstance.ephemeral() as alone:  # nothing online before: the day's window only
            own = online_run(alone, ranged.parts, day)
        assert events[day]["entities_by_view"] == own["entities_by_view"], day
        assert events[day]["dagster/row_count"] == own["dagster/row_count"] > 0
    assert len({m["dagster/row_count"] for m in events.values()}) > 1
    assert {m["partitions"] for m in events.values()} == {f"{DAYS[0]}..{DAYS[-1]}"}  # range-wide


def test_each_days_monitoring_record_names_the_materialization_that_wrote_it_and_what_it_read(ranged):
    """A drift or performance record in the lake says which asset, partition and run wrote it; that
    day's materialization names the record (key and hash) and the batch predictions' day summary it
    consumed, with the run that wrote that one."""
    import hashlib

    home = ranged.home
    predictions = events_by_day(ranged, BATCH_PREDICTIONS)
    for key in (DRIFT_REPORT, MODEL_PERFORMANCE):
        for day, metadata in events_by_day(ranged, key).items():
            record_key = f"monitoring/{key.path[-1]}/{day}.json"
            written = (home / "lake" / record_key).read_bytes()
            record = json.loads(written)
            assert record["dagster"] == {
                "asset": key.to_user_string(),
                "partition": day,
                "run_id": ranged.run_id,
            }
            assert record["day"] == day and "report_html" in record  # the record's own fields stay
            assert metadata["record_key"] == record_key
            assert metadata["record_sha256"] == hashlib.sha256(written).hexdigest()
            (consumed,) = metadata["consumed_records"]
            assert consumed == {
                "key": f"predictions/summary/{day}.json",
                "sha256": predictions[day]["record_sha256"],
                "run_id": ranged.run_id,
                "partition": day,
            }, (key, day)
    for day, metadata in predictions.items():
        summary = json.loads((home / "lake" / metadata["record_key"]).read_text())
        assert summary["dagster"]["partition"] == day and summary["dagster"]["run_id"] == ranged.run_id
        assert summary["flights"] == metadata["dagster/row_count"]
