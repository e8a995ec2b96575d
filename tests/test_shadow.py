"""Shadow evaluation against real parts: a champion (version 1, the network of `build_champion_in`) and a
challenger (version 2, boosted trees on shuffled labels, registered with `shadow_days`) in a real MLflow
registry, the Feast online store of the fixture's window, the service under FastAPI's TestClient.

1. the service with shadow on answers as without, and logs both models' probabilities (the challenger's
   equal to its pyfunc's on the same rows); a full queue drops and counts, never blocks;
2. batch predictions with `shadow: true` keep the challenger's probability beside the champion's;
3. monitoring/shadow_comparison on a short window equals sklearn on the rows it read (batch and online);
4. the gate with `shadow_days`: registration waits, `mlops model promote` refuses or promotes by the rules.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.lib.calendar import partition_range_tags
from tests.test_serving import offline_probabilities, request_body, resources, scheduled_flights

pytestmark = pytest.mark.slow

ONLINE_DAY = "2013-01-20"
DAYS = ("2013-01-20", "2013-01-21")  # inside the fixture's window: features and outcomes exist
BATCH_PREDICTIONS = dg.AssetKey(["predictions", "batch_predictions"])
SHADOW_COMPARISON = dg.AssetKey(["monitoring", "shadow_comparison"])
SHADOW_RULES = {"shadow_days": 2, "min_auc_gain": -1.0, "ece_tolerance": 1.0}


# ---- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shadow_home(training_set_home, tmp_path_factory) -> Path:
    """A home of its own (the session's champion_home stays as other modules expect it): version 1 the
    champion, version 2 registered with shadow rules and a relaxed holdout gate, so it waits as challenger."""
    from tests.conftest import build_champion_in
    from tests.test_training import TRAINING_KEYS, run_training, training_resources

    home = build_champion_in(training_set_home, tmp_path_factory.mktemp("shadow_home"))
    ops = {
        "models__flight_delay_model": {"config": {"shuffle_labels": True}},
        "models__registered_model": {"config": SHADOW_RULES},
    }
    assert run_training(training_resources(home), selection=TRAINING_KEYS[2:], ops=ops).success
    return home


def registry_client(home: Path):
    return resources(home)["mlflow"].client()


def labels_of(home: Path, day: str) -> pd.DataFrame:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select flight_id, label_late from marts.fct_flights "
            "where flight_date = cast(? as date) and label_late is not null",
            [day],
        ).df()


def reference_metrics(labels, probabilities) -> dict[str, float]:
    """sklearn's metrics, and the expected calibration error written out, on the same clipping as the
    evaluation (probabilities within [1e-7, 1 - 1e-7])."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(labels, dtype=float)
    p = np.clip(np.asarray(probabilities, dtype=float), 1e-7, 1 - 1e-7)
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(
        (bins == b).mean() * abs(p[bins == b].mean() - y[bins == b].mean())
        for b in range(10)
        if (bins == b).any()
    )
    return {
        "roc_auc": roc_auc_score(y, p),
        "log_loss": log_loss(y, p),
        "brier": brier_score_loss(y, p),
        "ece": ece,
    }


def private_lake(home: Path, root: Path):
    """A lake with only the reference tables the service checks codes against (the log goes there)."""
    from mlops_assets.resources.storage import LocalObjectStore

    lake = LocalObjectStore(root=str(root))
    for table in ("airlines", "airports"):
        lake.write_bytes(f"raw/{table}.parquet", (home / "lake" / "raw" / f"{table}.parquet").read_bytes())
    return lake


def comparison(home: Path, lake, days: tuple[str, str], source: str) -> dg.ExecuteInProcessResult:
    from mlops_assets.defs.monitoring.shadow_comparison import shadow_comparison
    from mlops_assets.resources.warehouse import DuckDBWarehouse

    return dg.materialize(
        [shadow_comparison],
        resources={"lake": lake, "warehouse": DuckDBWarehouse(path=str(home / "warehouse.duckdb"))},
        run_config={"ops": {"monitoring__shadow_comparison": {"config": {"source": source}}}},
        tags=partition_range_tags(*days),
    )


def day_metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, dict]:
    events = result.asset_materializations_for_node(key.to_python_identifier())
    return {e.partition: {k: v.value for k, v in e.metadata.items()} for e in events}


# ---- 1. the service ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    flights: pd.DataFrame
    without: list[dict]  # the answers of a service without shadow
    answers: list[dict]  # the same requests answered with shadow on
    log: pd.DataFrame
    metrics: str
    health: dict
    lake_root: Path


def ask(http, flights: pd.DataFrame) -> list[dict]:
    """Five flights one by one, the rest as one batch: both request paths."""
    answers = [http.post("/predict", json=request_body(f)).json() for f in flights.head(5).itertuples()]
    batch = http.post(
        "/predict/batch", json={"flights": [request_body(f) for f in flights.iloc[5:].itertuples()]}
    )
    assert batch.status_code == 200, batch.text
    return answers + batch.json()["predictions"]


def shadow_counter(text: str, name: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(f"mlops_serving_shadow_{name}_total ")]
    return float(line.split()[-1])


@pytest.fixture(scope="module")
def served(shadow_home, tmp_path_factory) -> Served:
    from fastapi.testclient import TestClient

    from mlops_assets.serving.app import ServiceConfig, create_app

    flights = scheduled_flights(shadow_home, day=ONLINE_DAY, limit=300)
    parts = resources(shadow_home)
    root = tmp_path_factory.mktemp("shadow_online_lake")
    quiet = {"poll_interval_s": 0.2, "log_flush_interval_s": 3600}  # one flush, at shutdown
    off = ServiceConfig(**quiet)
    with TestClient(
        create_app(parts["feast"], parts["mlflow"], private_lake(shadow_home, root / "off"), off)
    ) as http:
        without = ask(http, flights)
    on = ServiceConfig(shadow=True, **quiet)
    with TestClient(
        create_app(parts["feast"], parts["mlflow"], private_lake(shadow_home, root / "on"), on)
    ) as http:
        answers = ask(http, flights)
        deadline = time.monotonic() + 60
        while shadow_counter(text := http.get("/metrics").text, "scored") < len(flights):
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
        health = http.get("/health").json()
    (written,) = sorted((root / "on" / "predictions" / "online").glob("*/*.parquet"))
    return Served(flights, without, answers, pd.read_parquet(written), text, health, root / "on")


def test_with_shadow_on_the_service_answers_exactly_as_without(served):
    assert len(served.answers) == len(served.flights) == 300
    assert served.answers == served.without  # byte-for-byte the same JSON values
    assert {a["model_version"] for a in served.answers} == {"1"}


def test_the_log_keeps_both_versions_and_the_challengers_equal_its_pyfunc(served, shadow_home):
    log = served.log
    assert log["flight_id"].tolist() == [a["flight_id"] for a in served.answers]
    assert (log["model_version"] == "1").all() and (log["challenger_version"] == "2").all()
    np.testing.assert_array_equal(log["probability_late"], [a["probability_late"] for a in served.answers])
    feast = resources(shadow_home)["feast"]
    offline = offline_probabilities(shadow_home, "2", served.flights, feast)
    np.testing.assert_allclose(log["challenger_probability_late"], offline, atol=1e-9)
    # Two different models: the comparison is not a model against itself.
    assert np.abs(log["challenger_probability_late"] - log["probability_late"]).max() > 1e-3
    assert shadow_counter(served.metrics, "scored") == 300
    assert shadow_counter(served.metrics, "dropped") == 0 and shadow_counter(served.metrics, "failed") == 0
    assert "mlops_serving_shadow_challenger_version 2.0" in served.metrics
    shadow = served.health["shadow"]
    assert shadow["challenger_version"] == "2" and (shadow["scored"], shadow["dropped"]) == (300, 0)


def test_a_full_shadow_queue_drops_and_counts_and_never_blocks(shadow_home, tmp_path):
    """The worker is not started: the queue fills, and every later request is logged at once without the
    challenger's score and counted as dropped. Started, the worker scores what was queued."""
    from mlops_assets.serving.champion import load_champion
    from mlops_assets.serving.features import FeatureReader
    from mlops_assets.serving.flights import FlightRequest
    from mlops_assets.serving.prediction_log import PredictionLog
    from mlops_assets.serving.shadow import ShadowScorer

    parts = resources(shadow_home)
    champion = load_champion(parts["mlflow"])
    reader = FeatureReader(parts["feast"])
    log = PredictionLog(private_lake(shadow_home, tmp_path / "lake"), flush_interval_s=3600)
    scorer = ShadowScorer(parts["mlflow"], log.record, reader.read, lambda: champion.version, queue_size=2)
    scorer.check()
    assert scorer.challenger is not None and scorer.challenger.version == "2"
    flights = scheduled_flights(shadow_home, day=ONLINE_DAY, limit=15)
    requests = []
    for start in range(0, 15, 3):
        rows = [
            FlightRequest.model_validate(request_body(f)).entity_row()
            for f in flights.iloc[start : start + 3].itertuples()
        ]
        online = reader.read(rows, champion.feature_service)
        requests.append(
            (
                rows,
                online,
                {
                    "flight_id": [r["flight_id"] for r in rows],
                    "requested_at": [pd.Timestamp.now(tz="UTC")] * 3,
                },
            )
        )
    waits = []
    for rows, online, columns in requests:
        began = time.perf_counter()
        scorer.submit(champion, rows, online, columns, 3)
        waits.append(time.perf_counter() - began)
    assert max(waits) < 0.05, waits  # a put_nowait: never a wait for the worker
    assert (scorer.dropped, scorer.backlog(), scorer.scored) == (9, 2, 0)
    assert log.stats()["rows_pending"] == 9  # the dropped requests' rows are logged already
    scorer.start()
    scorer.stop()  # drains the queue
    assert (scorer.dropped, scorer.backlog(), scorer.scored) == (9, 0, 6)
    (key,) = log.flush()
    written = pd.read_parquet(tmp_path / "lake" / key)
    # In the order they reached the log: the three dropped requests at once, the two queued once scored.
    order = [*requests[2:], *requests[:2]]
    assert written["flight_id"].tolist() == [f for _, _, columns in order for f in columns["flight_id"]]
    assert written["challenger_probability_late"].notna().tolist() == [False] * 9 + [True] * 6
    assert set(written["challenger_version"].dropna()) == {"2"}
    # The two queued requests were scored in one model call: each got its own rows' probabilities.
    expected = np.concatenate([scorer.challenger.score(online) for _, online, _ in requests[:2]])
    np.testing.assert_array_equal(written["challenger_probability_late"].to_numpy()[9:], expected)


# ---- 2. and 3. batch predictions and the comparison ----------------------------------------------------


@dataclass(frozen=True)
class Compared:
    predictions: dg.ExecuteInProcessResult
    comparison: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def compared(shadow_home) -> Compared:
    from mlops_assets.defs.predictions.assets import build_prediction_assets
    from mlops_assets.resources.storage import LocalObjectStore

    parts = resources(shadow_home)
    predictions = dg.materialize(
        build_prediction_assets(),
        resources=parts,
        run_config={"ops": {"predictions__batch_predictions": {"config": {"shadow": True}}}},
        tags=partition_range_tags(*DAYS),
    )
    assert predictions.success
    lake = LocalObjectStore(root=str(shadow_home / "lake"))
    return Compared(predictions, comparison(shadow_home, lake, DAYS, "batch"))


def test_batch_predictions_with_shadow_keep_the_challengers_probability_beside(compared, shadow_home):
    import mlflow

    from mlops_assets.ml.data import categorical_columns, numeric_columns
    from mlops_assets.training.data import model_input_frame

    metadata = day_metadata(compared.predictions, BATCH_PREDICTIONS)
    tags = registry_client(shadow_home).get_model_version("flight_delay", "2").tags
    training = pd.read_parquet(shadow_home / "lake" / tags["training_set.key"])
    mlflow.set_tracking_uri(f"sqlite:///{shadow_home / 'mlflow' / 'mlflow.db'}")
    challenger = mlflow.pyfunc.load_model("models:/flight_delay/2")
    for day in DAYS:
        frame = pd.read_parquet(shadow_home / "lake" / "predictions" / "batch" / f"{day}.parquet")
        assert (frame["model_version"] == "1").all() and (frame["challenger_version"] == "2").all()
        inputs = model_input_frame(frame, categorical_columns(training), numeric_columns(training))
        np.testing.assert_allclose(
            frame["challenger_probability_late"], challenger.predict(inputs), atol=1e-9
        )
        assert metadata[day]["challenger_version"] == "2"
        assert metadata[day]["challenger_mean_probability"] == pytest.approx(
            round(frame["challenger_probability_late"].mean(), 4)
        )


def test_the_batch_comparison_equals_sklearn_on_the_same_rows(compared, shadow_home):
    metadata = day_metadata(compared.comparison, SHADOW_COMPARISON)
    assert sorted(metadata) == list(DAYS)
    for day in DAYS:
        frame = pd.read_parquet(shadow_home / "lake" / "predictions" / "batch" / f"{day}.parquet")
        rows = frame.merge(labels_of(shadow_home, day), on="flight_id")
        assert len(rows) > 500
        record = json.loads(
            (shadow_home / "lake" / "monitoring" / "shadow_comparison" / f"{day}.json").read_text()
        )
        assert record["compared"] and record["rows"] == len(rows) == metadata[day]["dagster/row_count"]
        assert (record["champion_version"], record["challenger_version"]) == ("1", "2")
        for side, column in (("champion", "probability_late"), ("challenger", "challenger_probability_late")):
            expected = reference_metrics(rows["label_late"], rows[column])
            for name, value in expected.items():
                assert record[side][name] == pytest.approx(value, abs=1e-9), (day, side, name)
                assert metadata[day][f"{side}/{name}"] == pytest.approx(value, abs=1e-6)
        assert record["delta"]["roc_auc"] == pytest.approx(
            record["challenger"]["roc_auc"] - record["champion"]["roc_auc"]
        )
    # Shuffled labels: the challenger ranks flights no better than chance, the champion does.
    assert all(metadata[d]["delta/roc_auc"] < -0.03 for d in DAYS)


def test_the_online_comparison_equals_sklearn_on_the_logged_rows(served, shadow_home):
    from mlops_assets.resources.storage import LocalObjectStore

    result = comparison(
        shadow_home, LocalObjectStore(root=str(served.lake_root)), (ONLINE_DAY, ONLINE_DAY), "online"
    )
    (metadata,) = day_metadata(result, SHADOW_COMPARISON).values()
    rows = served.log.merge(labels_of(shadow_home, ONLINE_DAY), on="flight_id")
    assert metadata["dagster/row_count"] == len(rows) > 200 and metadata["source"] == "online"
    for side, column in (("champion", "probability_late"), ("challenger", "challenger_probability_late")):
        for name, value in reference_metrics(rows["label_late"], rows[column]).items():
            assert metadata[f"{side}/{name}"] == pytest.approx(value, abs=1e-6), (side, name)


# ---- 4. the gate ---------------------------------------------------------------------------------------


def day_record(
    day: str, champion_auc: float, challenger_auc: float, rows: int = 500, pair=("1", "2")
) -> dict:
    return {
        "day": day,
        "compared": True,
        "rows": rows,
        "champion_version": pair[0],
        "challenger_version": pair[1],
        "champion": {"roc_auc": champion_auc, "log_loss": 0.5},
        "challenger": {"roc_auc": challenger_auc, "log_loss": 0.5},
    }


def test_the_shadow_gate_counts_only_enough_recent_days_of_the_same_pair():
    from mlops_assets.training.registry import ShadowRules, shadow_gate

    rules = ShadowRules(days=2, auc_tolerance=0.005)
    worse_then_better = [
        day_record("2013-02-01", 0.70, 0.60),
        day_record("2013-02-02", 0.70, 0.698),  # within the tolerance
        day_record("2013-02-03", 0.70, 0.72),
    ]
    assert shadow_gate(worse_then_better, "1", "2", rules).passed  # the two latest days count
    assert not shadow_gate(worse_then_better, "1", "2", ShadowRules(days=3, auc_tolerance=0.005)).passed
    refused = shadow_gate(worse_then_better[:2], "1", "2", rules)
    assert not refused.passed and refused.reasons == ["2013-02-01: roc_auc 0.6000 < 0.7000 - 0.005"]
    other_pair = [day_record("2013-02-04", 0.7, 0.8, pair=("3", "2")), day_record("2013-02-05", 0.7, 0.8)]
    assert shadow_gate(other_pair, "1", "2", rules).reasons == [
        "1 of 2 days of shadow evidence (>= 50 flights)"
    ]
    too_small = [day_record("2013-02-06", 0.7, 0.8, rows=10), day_record("2013-02-07", 0.7, 0.8)]
    assert not shadow_gate(too_small, "1", "2", rules).passed
    assert shadow_gate([], "1", "2", ShadowRules(days=0)).passed  # the default needs no evidence


def test_registration_with_shadow_days_waits_as_challenger(shadow_home):
    from mlops_assets.training import registry

    client = registry_client(shadow_home)
    assert registry.alias_version(client, "flight_delay", registry.CHAMPION) == "1"
    assert registry.alias_version(client, "flight_delay", registry.CHALLENGER) == "2"
    tags = client.get_model_version("flight_delay", "2").tags
    assert tags["gate"] == "awaiting_shadow"
    assert "needs 2 days of shadow evidence against version 1" in tags["gate_reasons"]
    assert registry.shadow_rules(tags) == registry.ShadowRules(days=2)


def test_mlops_model_promote_respects_the_shadow_evidence(compared, shadow_home, monkeypatch, capsys):
    from mlops_assets.cli import main
    from mlops_assets.training import registry

    monkeypatch.setenv("MLOPS_HOME", str(shadow_home))
    monkeypatch.setenv("MLOPS_PROFILE", "local")
    client = registry_client(shadow_home)

    def champion() -> str | None:
        return registry.alias_version(client, "flight_delay", registry.CHAMPION)

    # The registration's rules (2 days, no tolerance): the shuffled challenger lost both days.
    assert main(["model", "promote", "--version", "2"]) == 1
    assert champion() == "1" and "stays challenger" in capsys.readouterr().out
    # More days than were compared: refused for want of evidence.
    assert (
        main(["model", "promote", "--version", "2", "--shadow-days", "3", "--shadow-auc-tolerance", "1"]) == 1
    )
    assert "2 of 3 days of shadow evidence" in capsys.readouterr().out and champion() == "1"
    # Tolerances wide enough to admit it: promoted, and the reason recorded.
    tolerant = ["--shadow-auc-tolerance", "1", "--shadow-log-loss-tolerance", "100"]
    try:
        assert main(["model", "promote", "--version", "2", *tolerant]) == 0
        assert champion() == "2"
        (event,) = [e for e in registry.history(client, "flight_delay") if e["action"] == "promote"][-1:]
        assert event["reason"] == "2 days of shadow evidence not worse than version 1"
    finally:
        registry.rollback(client, "flight_delay", "test")
    assert champion() == "1"
