"""The online prediction service against real parts: the champion of a real MLflow registry (trained on a
three-week window by the `champion_home` fixture), the Feast online store materialized for that window
(SQLite, and the machine's Redis), FastAPI's TestClient and a real uvicorn on 127.0.0.1.

1. keys: a request's flight_id is fct_flights' flight_id;
2. predictions: one flight and a batch score exactly as the registered pyfunc scores the online row;
3. bad requests: every kind gets a 422 (or 413) that names the field, never a 500;
4. health, OpenAPI, the prediction log in the lake;
5. under load on a real server: a materialization of the online store and a champion swap fail no request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TRAINING_WINDOW

POLL_S = 0.2  # the tests' champion poll interval (the service default is 2 s)
DAY = "2013-01-20"  # a day inside the window, materialized online
SERVICE = "flight_delay_v2"  # the feature service new training sets use, hence the champion's


# ---- helpers -------------------------------------------------------------------------------------------


def scheduled_flights(home: Path, day: str = DAY, limit: int = 40) -> pd.DataFrame:
    """Real flights of `day` from fct_flights: their keys as a client would send them, and flight_id."""
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            """
            select flight_id, carrier, flight_number, origin, dest, sched_dep_local, sched_dep_utc
            from marts.fct_flights where flight_date = cast(? as date) order by flight_id limit ?
            """,
            [day, limit],
        ).df()


def request_body(flight) -> dict:
    """The JSON of one flight, departure as a naive New York wall clock (as sched_dep_time is)."""
    return {
        "carrier": flight.carrier,
        "flight_number": int(flight.flight_number),
        "origin": flight.origin,
        "dest": flight.dest,
        "scheduled_departure": pd.Timestamp(flight.sched_dep_local).isoformat(),
    }


def resources(home: Path, online_store: str | None = None, project: str | None = None) -> dict:
    from mlops_assets.resources.feature_store import FeastResource
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.resources.tracking import MlflowResource

    feast = {"online_store": online_store} if online_store else {}
    if project:
        feast["project"] = project
    return {
        "feast": FeastResource(profile="local", home=str(home), **feast),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"),
        "lake": LocalObjectStore(root=str(home / "lake")),
    }


def make_app(home: Path, online_store: str | None = None, project: str | None = None, **config):
    from mlops_assets.serving.app import ServiceConfig, create_app

    parts = resources(home, online_store, project)
    settings = ServiceConfig(**{"poll_interval_s": POLL_S, **config})
    return create_app(parts["feast"], parts["mlflow"], parts["lake"], settings)


def offline_probabilities(home: Path, version: str, flights: pd.DataFrame, feast) -> np.ndarray:
    """What the registered pyfunc says for the online feature rows of `flights`: the reference a
    service answer must equal (same rows, same model_input_frame as training)."""
    import mlflow

    from mlops_assets.ml.data import categorical_columns, numeric_columns
    from mlops_assets.training.data import model_input_frame

    rows = [
        {"flight_id": f.flight_id, "carrier": f.carrier, "origin": f.origin, "dest": f.dest,
         "route": f"{f.origin}-{f.dest}"}
        for f in flights.itertuples()
    ]  # fmt: skip
    tags = resources(home)["mlflow"].client().get_model_version("flight_delay", version).tags
    # The service the version was trained with (its tag), as serving reads it.
    online = pd.DataFrame(feast.online_features(rows, tags["feature_service"]))
    training = pd.read_parquet(home / "lake" / tags["training_set.key"])  # content-addressed
    inputs = model_input_frame(online, categorical_columns(training), numeric_columns(training))
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    return mlflow.pyfunc.load_model(f"models:/flight_delay/{version}").predict(inputs).to_numpy()


def expected_threshold(home: Path, version: str) -> tuple[float, str]:
    """The version's decision_threshold tag when the registry stage set one, else the service default."""
    tags = resources(home)["mlflow"].client().get_model_version("flight_delay", version).tags
    if "decision_threshold" in tags:
        return float(tags["decision_threshold"]), "model_version_tag"
    return 0.3, "service_default"


def errors_of(response) -> list[tuple[tuple, str]]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    return [(tuple(e["loc"]), e["type"]) for e in response.json()["detail"]]


# ---- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flights(champion_home) -> pd.DataFrame:
    return scheduled_flights(champion_home)


@pytest.fixture(scope="module")
def client(champion_home):
    from fastapi.testclient import TestClient

    with TestClient(make_app(champion_home)) as test_client:
        yield test_client


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """The app under a real uvicorn on 127.0.0.1 (an ephemeral port), in a thread; yields its URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Load:
    """Threads that post one-flight and batch requests back to back until stopped; every response kept."""

    def __init__(self, url: str, bodies: list[dict], threads: int = 4) -> None:
        self.url, self.bodies = url, bodies
        # per thread, in order: (flight_id, model_version, probability_late) of every prediction
        self.results: list[list[tuple[str, str, float]]] = [[] for _ in range(threads)]
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def versions_seen(self) -> set[str]:
        return {version for results in self.results for _, version, _ in results}

    def _run(self, index: int) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=30) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                body = self.bodies[(index + n) % len(self.bodies)]
                batch = n % 3 == 0
                try:
                    if batch:
                        response = http.post("/predict/batch", json={"flights": self.bodies[:5]})
                    else:
                        response = http.post("/predict", json=body)
                except httpx.HTTPError as error:
                    self.failures.append(f"{type(error).__name__}: {error}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text[:300]}")
                    continue
                payload = response.json()
                predictions = payload["predictions"] if batch else [payload]
                versions = {p["model_version"] for p in predictions}
                if batch and versions != {payload["model_version"]}:
                    self.failures.append(f"a batch scored by two versions: {payload}")
                for p in predictions:
                    self.results[index].append((p["flight_id"], p["model_version"], p["probability_late"]))


# ---- 1. keys -------------------------------------------------------------------------------------------


def test_request_keys_are_the_flight_ids_of_fct_flights(training_set_home):
    from mlops_assets.serving.flights import FlightRequest

    sample = scheduled_flights(training_set_home, day="2013-01-07", limit=5000)
    assert len(sample) > 500
    for flight in sample.itertuples():
        request = FlightRequest.model_validate(request_body(flight))
        assert request.flight_id == flight.flight_id
        assert request.entity_row()["route"] == f"{flight.origin}-{flight.dest}"
    # The same instant with an explicit offset, lower-case codes: the same key.
    flight = sample.iloc[0]
    utc = pd.Timestamp(flight.sched_dep_utc).tz_localize("UTC") if pd.Timestamp(
        flight.sched_dep_utc).tzinfo is None else pd.Timestamp(flight.sched_dep_utc)  # fmt: skip
    body = {**request_body(flight), "carrier": flight.carrier.lower(), "scheduled_departure": utc.isoformat()}
    assert FlightRequest.model_validate(body).flight_id == flight.flight_id


# ---- 2. predictions ------------------------------------------------------------------------------------


def test_one_flight_is_scored_by_the_champion_exactly_as_offline(client, champion_home, flights):
    flight = flights.iloc[3]
    response = client.post("/predict", json=request_body(flight))
    assert response.status_code == 200, response.text
    body = response.json()
    threshold, source = expected_threshold(champion_home, "1")
    assert body["flight_id"] == flight.flight_id and body["model_version"] == "1"
    assert body["decision_threshold"] == pytest.approx(threshold) and body["threshold_source"] == source
    assert body["decision"] == ("late" if body["probability_late"] >= threshold else "on_time")
    feast = resources(champion_home)["feast"]
    reference = offline_probabilities(champion_home, "1", flights.iloc[[3]], feast)
    assert body["probability_late"] == pytest.approx(float(reference[0]), abs=1e-6)


def test_a_batch_scores_each_flight_as_a_single_request_would(client, champion_home, flights):
    batch = flights.head(25)
    response = client.post("/predict/batch", json={"flights": [request_body(f) for f in batch.itertuples()]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1"
    assert [p["flight_id"] for p in body["predictions"]] == batch["flight_id"].tolist()
    probabilities = np.array([p["probability_late"] for p in body["predictions"]])
    assert ((probabilities > 0) & (probabilities < 1)).all() and probabilities.std() > 0
    single = client.post("/predict", json=request_body(batch.iloc[7])).json()
    assert single["probability_late"] == pytest.approx(probabilities[7], abs=1e-6)
    reference = offline_probabilities(champion_home, "1", batch, resources(champion_home)["feast"])
    np.testing.assert_allclose(probabilities, reference, atol=1e-6)


def test_the_decision_threshold_is_the_versions_tag_or_the_service_default():
    from mlops_assets.training.registry import decision_threshold

    assert decision_threshold({"decision_threshold": "0.42"}, 0.3) == (0.42, "model_version_tag")
    assert decision_threshold({}, 0.3) == (0.3, "service_default")
    for broken in ("0.5x", "1.5", "0", "nan"):  # not a probability strictly inside (0, 1)
        assert decision_threshold({"decision_threshold": broken}, 0.25) == (0.25, "service_default")


def test_online_rows_become_exactly_the_inputs_training_gives_the_model(champion_home):
    """The service's numpy path (ModelInputs) against training's own: Preprocessor.transform of
    model_input_frame, bit for bit, on every online row of three days and on rows no real flight has."""
    import mlflow

    from mlops_assets.serving.features import FEW_ROWS, ModelInputs
    from mlops_assets.training.data import model_input_frame

    days = pd.concat(
        [scheduled_flights(champion_home, d, limit=5000) for d in ("2013-01-02", "2013-01-14", DAY)]
    )
    rows = [
        {"flight_id": f.flight_id, "carrier": f.carrier, "origin": f.origin, "dest": f.dest,
         "route": f"{f.origin}-{f.dest}"}
        for f in days.itertuples()
    ]  # fmt: skip
    online = resources(champion_home)["feast"].online_features(rows, SERVICE)
    mlflow.set_tracking_uri(f"sqlite:///{champion_home / 'mlflow' / 'mlflow.db'}")
    prep = mlflow.pyfunc.load_model("models:/flight_delay/1").unwrap_python_model().bundle.preprocessor
    edge = {name: list(values[:4]) for name, values in online.items()}
    edge["carrier"][0] = "ZZ"  # a carrier the model never saw: index 0
    edge["flight_schedule__sched_dep_hour_local"][1] = None  # a missing category
    edge["flight_schedule__sched_dep_hour_local"][2] = 7.0  # the same hour as 7
    for name in prep.numeric:
        edge[name][3] = None  # every number missing: medians and indicators
    inputs = ModelInputs(prep)

    def same(columns: dict[str, list]) -> None:
        fast = inputs.transform(columns)
        exact = prep.transform(model_input_frame(pd.DataFrame(columns), prep.categorical, prep.numeric))
        np.testing.assert_array_equal(fast[0], exact[0])
        np.testing.assert_array_equal(fast[1], exact[1])

    assert len(rows) > 2000
    same(online)
    same({name: online[name] + edge[name] for name in online})
    for i in (0, 100, 1000):  # one flight, as most requests are (pandas types its columns differently)
        same({name: values[i : i + 1] for name, values in online.items()})
    few = FEW_ROWS  # up to FEW_ROWS rows take interp_rows: every online row goes through it, few at a time
    for start in range(0, len(rows), few):
        same({name: values[start : start + few] for name, values in online.items()})
    # Every value is remembered now: the same rows again, one at a time and few at a time, are looked up
    # (ModelInputs._remembered), and must still be the training path's bits.
    remembered = inputs._remembered
    hits = []
    inputs._remembered = lambda *args: hits.append(found := remembered(*args)) or found
    for i in range(0, len(rows), 7):
        same({name: values[i : i + 1] for name, values in online.items()})
    for start in range(0, len(rows), few):
        same({name: values[start : start + few] for name, values in online.items()})
    assert sum(found is not None for found in hits) > 0.9 * len(hits), "the remembered path was not taken"


def test_the_numpy_network_gives_the_models_probabilities(champion_home):
    """One flight is scored by the network in numpy (serving/network.py), batches by its TorchScript
    trace: on the online rows of a day, one at a time and a few at a time, the numpy network's
    probabilities are the eager model's within TOLERANCE (float32 rounding: matrix products sum in
    another order), and the champion picks numpy only for few rows."""
    import mlflow
    import torch

    from mlops_assets.serving.champion import _numpy_network, _torch_network, load_champion
    from mlops_assets.serving.features import ModelInputs
    from mlops_assets.serving.network import NUMPY_ROWS, TOLERANCE, NumpyNetwork

    mlflow.set_tracking_uri(f"sqlite:///{champion_home / 'mlflow' / 'mlflow.db'}")
    bundle = mlflow.pyfunc.load_model("models:/flight_delay/1").unwrap_python_model().bundle
    model, prep = bundle.model.eval(), bundle.preprocessor
    network = _numpy_network(model, prep)
    assert isinstance(network, NumpyNetwork), "the demo's network must run in numpy"
    traced = _torch_network(model, prep)
    rows = window_rows(champion_home, (DAY,))
    online = resources(champion_home)["feast"].online_features(rows, SERVICE)
    codes, numbers = ModelInputs(prep).transform(online)
    with torch.inference_mode():
        eager = torch.sigmoid(model(torch.from_numpy(codes), torch.from_numpy(numbers))).numpy()
    eager = eager.astype("float64")
    np.testing.assert_array_equal(traced(codes, numbers), eager)  # the trace: the same bits
    single = np.concatenate([network(codes[i : i + 1], numbers[i : i + 1]) for i in range(len(codes))])
    few = np.concatenate(
        [
            network(codes[i : i + NUMPY_ROWS], numbers[i : i + NUMPY_ROWS])
            for i in range(0, len(codes), NUMPY_ROWS)
        ]
    )
    assert len(codes) > 500 and single.dtype == np.float64
    np.testing.assert_allclose(single, eager, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(few, eager, rtol=0, atol=TOLERANCE)
    champion = load_champion(resources(champion_home)["mlflow"], version="1")
    np.testing.assert_array_equal(champion.predict_arrays(codes[:1], numbers[:1]), single[:1])
    many = champion.predict_arrays(codes[:100], numbers[:100])  # torch's sums depend on the batch size
    np.testing.assert_array_equal(many, traced(codes[:100], numbers[:100]))


@pytest.fixture(scope="module")
def boosted_v1_home(training_set_home, tmp_path_factory) -> Path:
    """A home whose champion is gradient-boosted trees trained on a flight_delay_v1 training set: a model
    family other than the network, and the feature service of an older model."""
    from tests.conftest import build_champion_in

    home = tmp_path_factory.mktemp("boosted_v1_home")
    return build_champion_in(
        training_set_home, home, family="gradient_boosting", feature_service="flight_delay_v1"
    )


def test_a_boosted_champion_of_an_older_service_is_served_as_its_pyfunc_scores(boosted_v1_home, flights):
    """The service reads the feature service the champion was trained with (v1: 56 features, not v2's
    62) and scores with the trees exactly as the registered pyfunc does, one flight and a batch."""
    from fastapi.testclient import TestClient

    from mlops_assets.ml.boosting import BoostedModel
    from mlops_assets.serving.champion import load_champion

    parts = resources(boosted_v1_home)
    tags = parts["mlflow"].client().get_model_version("flight_delay", "1").tags
    assert tags["feature_service"] == "flight_delay_v1"
    champion = load_champion(parts["mlflow"])
    assert champion.version == "1" and champion.feature_service == "flight_delay_v1"
    assert len(champion.numeric) + 2 == 56  # the two coded features are categorical; no v2 weather
    assert "weather_hourly__pressure_change_3h" in champion.numeric
    assert "weather_hourly__temp_change_3h" not in champion.numeric
    import mlflow

    mlflow.set_tracking_uri(parts["mlflow"].tracking_uri)
    bundle = mlflow.pyfunc.load_model("models:/flight_delay/1").unwrap_python_model().bundle
    assert isinstance(bundle, BoostedModel)
    from mlops_assets.serving.champion import _compiled_trees

    assert _compiled_trees(bundle, bundle.preprocessor) is not None  # one flight: the trees' arrays
    batch = flights.head(25)
    reference = offline_probabilities(boosted_v1_home, "1", batch, parts["feast"])
    with TestClient(make_app(boosted_v1_home)) as client:
        health = client.get("/health").json()
        assert health["feature_service"] == "flight_delay_v1" and health["champion_version"] == "1"
        body = client.post("/predict/batch", json={"flights": [request_body(f) for f in batch.itertuples()]})
        assert body.status_code == 200, body.text
        probabilities = np.array([p["probability_late"] for p in body.json()["predictions"]])
        one = client.post("/predict", json=request_body(batch.iloc[7])).json()
    assert probabilities.std() > 0
    np.testing.assert_allclose(probabilities, reference, atol=1e-9)
    assert one["probability_late"] == pytest.approx(reference[7], abs=1e-9)


def test_interp_rows_gives_the_bits_np_interp_gives():
    """interp_rows against np.interp column by column: below, on, between and past the grid points, on
    tied grid points (a column that is mostly 0), on huge values and NaN, both ways round."""
    from mlops_assets.serving.features import interp_rows

    generator = np.random.default_rng(7)
    grids = np.sort(generator.normal(size=(6, 101)) * 10, axis=1)
    grids[1, :60] = 0.0  # ties
    grids[2] = np.round(grids[2])  # integer steps, many ties
    grids[3] = np.linspace(-1, 1, 101)
    ranks = np.linspace(0, 1, 101)
    special = [-1e300, 1e300, float("nan"), 0.0, -0.0, grids[0, 0], grids[0, -1], grids[2, 50]]
    x = np.concatenate([generator.normal(size=(6, 40)) * 12, np.tile(special, (6, 1)), grids[:, ::9]], axis=1)
    for xs, xp, fp in ((x, grids, ranks), (-x, -grids[:, ::-1], -ranks[::-1])):
        expected = np.stack([np.interp(xs[c], xp[c], fp) for c in range(len(xp))])
        np.testing.assert_array_equal(interp_rows(xs, xp, fp), expected)


def window_rows(home: Path, days: tuple[str, ...] = ("2013-01-02", DAY)) -> list[dict]:
    """Entity rows of every flight of `days`, then one row no entity of which exists, then a repeat."""
    flights = pd.concat([scheduled_flights(home, d, limit=5000) for d in days])
    rows = [
        {"flight_id": f.flight_id, "carrier": f.carrier, "origin": f.origin, "dest": f.dest,
         "route": f"{f.origin}-{f.dest}"}
        for f in flights.itertuples()
    ]  # fmt: skip
    nowhere = {"flight_id": "ZZ-1-XXX-201301020000", "carrier": "ZZ", "origin": "XXX", "dest": "YYY",
               "route": "XXX-YYY"}  # fmt: skip
    return [*rows, nowhere, rows[0]]


def assert_reads_as_feast(reader, feast, rows: list[dict]) -> None:
    """FeatureReader.read equals Feast's get_online_features(...).to_dict(): same columns, same values
    (None where Feast has None), for all rows at once and for single rows."""
    expected = feast.online_features(rows, SERVICE)
    got = reader.read(rows, SERVICE)
    assert set(got) == set(expected)
    for name, values in expected.items():
        assert got[name] == values, name
    nowhere = {name: values[-2] for name, values in got.items() if "__" in name}
    assert set(nowhere.values()) == {None}, "an unknown entity reads None everywhere"
    for i in (0, len(rows) // 2):
        one = reader.read([rows[i]], SERVICE)
        assert one == {name: values[i : i + 1] for name, values in expected.items()}


def test_the_reader_returns_what_feast_get_online_features_returns(champion_home):
    from mlops_assets.serving.features import FeatureReader

    feast = resources(champion_home)["feast"]
    rows = window_rows(champion_home)
    assert len(rows) > 1500
    assert_reads_as_feast(FeatureReader(feast), feast, rows)


# ---- 3. bad requests -----------------------------------------------------------------------------------


def _replace(body: dict, **changes) -> dict:
    out = {**body, **changes}
    return {k: v for k, v in out.items() if v is not ...}


MALFORMED = {
    # name: (change to a valid body, expected (loc, type) in the 422's detail)
    "missing field": ({"dest": ...}, (("body", "dest"), "missing")),
    "number as text": ({"flight_number": "1545"}, (("body", "flight_number"), "int_type")),
    "number not a number": ({"flight_number": "abc"}, (("body", "flight_number"), "int_type")),
    "number as a list": ({"flight_number": [1545]}, (("body", "flight_number"), "int_type")),
    "number zero": ({"flight_number": 0}, (("body", "flight_number"), "greater_than")),
    "carrier not text": ({"carrier": 12}, (("body", "carrier"), "string_type")),
    "carrier malformed": ({"carrier": "UNITED"}, (("body", "carrier"), "string_pattern_mismatch")),
    "unknown carrier": ({"carrier": "ZZ"}, (("body", "carrier"), "unknown_carrier")),
    "origin outside New York": ({"origin": "BOS"}, (("body", "origin"), "literal_error")),
    "unknown airport": ({"dest": "QQQ"}, (("body", "dest"), "unknown_airport")),
    "date after the data": (
        {"scheduled_departure": "2014-01-20T08:00"}, (("body", "scheduled_departure"), "date_outside_data")
    ),
    "date before the data (New York day)": (
        {"scheduled_departure": "2013-01-01T04:30:00Z"},  # 23:30 on Dec 31 in New York
        (("body", "scheduled_departure"), "date_outside_data"),
    ),
    "date without a time": (
        {"scheduled_departure": "2013-01-20"}, (("body", "scheduled_departure"), "datetime_without_time")
    ),
    "date as a number": (
        {"scheduled_departure": 1358683200}, (("body", "scheduled_departure"), "datetime_type")
    ),
    "date not a date": (
        {"scheduled_departure": "next tuesday"},
        (("body", "scheduled_departure"), "datetime_from_date_parsing"),
    ),
    "seconds in the departure": (
        {"scheduled_departure": "2013-01-20T08:00:30"},
        (("body", "scheduled_departure"), "datetime_not_whole_minute"),
    ),
    "unexpected field": ({"destination": "IAH"}, (("body", "destination"), "extra_forbidden")),
    "not a scheduled flight": (
        {"flight_number": 9999}, (("body", "scheduled_departure"), "unknown_flight")
    ),
    "number as a float": ({"flight_number": 1545.0}, (("body", "flight_number"), "int_type")),
    "number as a boolean": ({"flight_number": True}, (("body", "flight_number"), "int_type")),
    "number far too large": ({"flight_number": 10**30}, (("body", "flight_number"), "less_than_equal")),
    "number of 4,000 digits": ({"flight_number": -(10**3999)}, (("body", "flight_number"), "greater_than")),
    "carrier empty": ({"carrier": ""}, (("body", "carrier"), "string_pattern_mismatch")),
    "departure null": ({"scheduled_departure": None}, (("body", "scheduled_departure"), "datetime_type")),
    # the ends of Python's date range: converting them to New York time or UTC overflowed (a 500)
    **{
        f"departure {when}": (
            {"scheduled_departure": when}, (("body", "scheduled_departure"), "date_outside_data")
        )
        for when in ("0001-01-01T01:00:00Z", "0001-01-01T00:00", "0001-01-01T00:00:00-23:59",
                     "9999-12-31T23:59:00-05:00", "9999-12-31T23:59", "9999-12-31T23:59:00+14:00")
    },
    # a New York wall clock that names two instants, or none: the client must give the offset
    "departure in the repeated hour": (
        {"scheduled_departure": "2013-11-03T01:30"}, (("body", "scheduled_departure"), "datetime_ambiguous")
    ),
    "departure in the skipped hour": (
        {"scheduled_departure": "2013-03-10T02:30"}, (("body", "scheduled_departure"), "datetime_nonexistent")
    ),
    # pydantic reads a numeric string as Unix seconds: "1358683200.0" would be 2013-01-20 12:00Z
    **{
        f"departure as Unix seconds in text {text}": (
            {"scheduled_departure": text}, (("body", "scheduled_departure"), "datetime_type")
        )
        for text in ("1358683200.0", "13586832000", "+1358683200", "-1358683200")
    },
}  # fmt: skip


def assert_documented_shape(response) -> None:
    """The body of every client error: `{"detail": [{type, loc, msg, input}]}`, each msg saying why."""
    from mlops_assets.serving.errors import ClientErrorBody

    assert response.headers["content-type"] == "application/json", response.headers
    body = ClientErrorBody.model_validate(response.json())
    assert body.detail and all(entry.msg and entry.type for entry in body.detail), response.text


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_flight_gets_a_422_that_names_the_field(client, flights, case):
    change, expected = MALFORMED[case]
    response = client.post("/predict", json=_replace(request_body(flights.iloc[0]), **change))
    assert response.status_code == 422, response.text
    assert expected in errors_of(response)
    assert_documented_shape(response)


def test_malformed_bodies_and_batches_get_a_422_never_a_500(client, flights):
    good = [request_body(f) for f in flights.head(6).itertuples()]
    not_json = client.post(
        "/predict", content=b'{"carrier": "UA",', headers={"content-type": "application/json"}
    )
    assert (("body", 17), "json_invalid") in errors_of(not_json)
    assert (("body",), "missing") in errors_of(client.post("/predict"))
    assert (("body",), "model_attributes_type") in errors_of(client.post("/predict", json=[good[0]]))
    assert (("body", "flights"), "too_short") in errors_of(
        client.post("/predict/batch", json={"flights": []})
    )
    too_many = client.post("/predict/batch", json={"flights": good * 200})  # 1,200 > max_batch 1,000
    assert (("body", "flights"), "too_long") in errors_of(too_many)
    one_bad = [*good[:3], {**good[3], "dest": "QQQ"}, {**good[4], "flight_number": "x"}, good[5]]
    listed = errors_of(client.post("/predict/batch", json={"flights": one_bad}))
    assert (("body", "flights", 4, "flight_number"), "int_type") in listed
    # The structure is checked first; once it is fine, the reference tables name the unknown airport.
    listed = errors_of(
        client.post("/predict/batch", json={"flights": [*good[:3], {**good[3], "dest": "QQQ"}]})
    )
    assert listed == [(("body", "flights", 3, "dest"), "unknown_airport")]


GOOD = b'{"carrier": "UA", "flight_number": 1545, "origin": "EWR", "dest": "IAH", '
DEPARTS = b'"scheduled_departure": "2013-01-20T06:00"}'
NESTED = b'{"carrier": ' + b"[" * 900 + b"]" * 900 + b"}"  # within the parser's limit, deeper than the echo's
RAW_BODIES = {
    # name: (body, content-type, path, (status, (loc, type), a phrase of the msg))
    "NaN in a field": (
        b'{"flight_number": NaN}',
        None,
        "/predict",
        (422, (("body", 18), "json_invalid"), "NaN"),
    ),
    "Infinity in a field": (
        b'{"carrier": "UA", "flight_number": Infinity}',
        None,
        "/predict",
        (422, (("body", 35), "json_invalid"), "Infinity is not a finite number"),
    ),
    "-Infinity in an unknown field": (
        b'{"x": "NaN, 1e400", "y": -Infinity}',
        None,
        "/predict",
        (422, (("body", 25), "json_invalid"), "-Infinity"),
    ),
    "1e400 (inf as a double)": (
        b'{"flight_number": 1e400}',
        None,
        "/predict",
        (422, (("body", 18), "json_invalid"), "1e400"),
    ),
    "-1e309 in an array": (
        b'{"x": [1, -1e309]}',
        None,
        "/predict",
        (422, (("body", 10), "json_invalid"), "-1e309"),
    ),
    "NaN in a batch": (
        b'{"flights": [{"flight_number": 1}, {"flight_number": NaN}]}',
        None,
        "/predict/batch",
        (422, (("body", 53), "json_invalid"), "NaN"),
    ),
    "not UTF-8 (one byte)": (b"\xff", None, "/predict", (422, (("body", 0), "json_invalid"), "not UTF-8")),
    "not UTF-8 (Latin-1 in a string)": (
        b'{"carrier": "\xe9"}',
        None,
        "/predict",
        (422, (("body", 13), "json_invalid"), "byte 0xe9 at offset 13"),
    ),
    "not UTF-8 (truncated sequence)": (
        b'{"carrier": "\xc3"}',
        None,
        "/predict",
        (422, (("body", 13), "json_invalid"), "0xc3"),
    ),
    "not UTF-8 (an encoded surrogate)": (
        b'{"carrier": "\xed\xa0\x80"}',
        None,
        "/predict",
        (422, (("body", 13), "json_invalid"), "0xed"),
    ),
    "gzip-compressed": (
        gzip.compress(GOOD + DEPARTS),
        None,
        "/predict",
        (422, (("body", 1), "json_invalid"), "looks gzip-compressed"),
    ),
    "UTF-16": (
        '{"carrier": "UA"}'.encode("utf-16"),
        None,
        "/predict",
        (422, (("body", 0), "json_invalid"), "UTF-8"),
    ),
    "a lone surrogate escape in a value": (
        b'{"carrier": "\\ud800A"}',
        None,
        "/predict",
        (422, (("body", "carrier"), "string_unicode"), "unicode"),
    ),
    "a lone surrogate escape in a key": (
        b'{"\\udfff": 1}',
        None,
        "/predict",
        (422, (("body",), "string_unicode"), "unicode"),
    ),
    "nested past the parser's limit": (
        b"[" * 100_000,
        None,
        "/predict",
        (422, (("body", 0), "json_invalid"), "nested too deeply"),
    ),
    "nested 900 deep in a field": (
        NESTED,
        None,
        "/predict",
        (422, (("body", "carrier"), "string_type"), "string"),
    ),
    "an integer of 5,000 digits": (
        b'{"flight_number": -' + b"9" * 5000 + b"}",
        None,
        "/predict",
        (422, (("body", 18), "json_invalid"), "5000 digits is too long"),
    ),
    "empty": (b"", None, "/predict", (422, (("body",), "missing"), "required")),
    "empty, as text": (b"", "text/plain", "/predict", (422, (("body",), "missing"), "required")),
    "only spaces": (b"   ", None, "/predict", (422, (("body", 3), "json_invalid"), "Expecting value")),
    "null": (b"null", None, "/predict", (422, (("body",), "model_attributes_type"), "dictionary")),
    "a string": (b'"UA 1545"', None, "/predict", (422, (("body",), "model_attributes_type"), "dictionary")),
    "two objects": (b"{}{}", None, "/predict", (422, (("body", 2), "json_invalid"), "Extra data")),
    "JSON as text/plain": (
        GOOD + DEPARTS,
        "text/plain",
        "/predict",
        (415, (("header", "content-type"), "unsupported_media_type"), "text/plain"),
    ),
    "not UTF-8 as text/plain": (
        b"\xff\xfe",
        "text/plain",
        "/predict",
        (415, (("header", "content-type"), "unsupported_media_type"), "application/json"),
    ),
    "a form": (
        b"carrier=UA",
        "application/x-www-form-urlencoded",
        "/predict",
        (415, (("header", "content-type"), "unsupported_media_type"), "form"),
    ),
    "multipart": (
        b"--x\r\n\r\n--x--",
        "multipart/form-data; boundary=x",
        "/predict/batch",
        (415, (("header", "content-type"), "unsupported_media_type"), "multipart"),
    ),
    "no content-type": (
        GOOD + DEPARTS,
        "",
        "/predict",
        (415, (("header", "content-type"), "unsupported_media_type"), "no content-type"),
    ),
    "300,000 flights, under the byte limit": (
        b'{"flights": [' + b"0," * 300_000 + b"0]}",
        None,
        "/predict/batch",
        (422, (("body", "flights"), "too_long"), "at most 1000"),
    ),
    "an unknown field holding 200,000 numbers": (
        GOOD + b'"x": [' + b"1," * 200_000 + b"1], " + DEPARTS,
        None,
        "/predict",
        (422, (("body", "x"), "extra_forbidden"), "not permitted"),
    ),
}


@pytest.mark.parametrize("case", list(RAW_BODIES), ids=list(RAW_BODIES))
def test_a_body_that_is_not_a_flight_in_json_gets_a_4xx_in_the_documented_shape(client, case):
    """Bodies no JSON client library writes: FastAPI alone answered them with a 500 (NaN, Infinity, 1e400,
    lone surrogates, non-UTF-8 as text/plain) or a 400 in another shape (not UTF-8, too deep, too long)."""
    body, media, path, (status, expected, phrase) = RAW_BODIES[case]
    headers = {"content-type": "application/json" if media is None else media}
    if media == "":
        headers = {}
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == status, response.text[:500]
    assert expected in errors_of(response), response.text[:500]
    assert_documented_shape(response)
    assert any(phrase in entry["msg"] for entry in response.json()["detail"]), response.text[:500]
    if case == "nested 900 deep in a field":  # the echo is cut, not recursed into
        assert "..." in json.dumps(response.json()["detail"][0]["input"])


def test_what_a_client_may_add_to_a_json_body_is_still_scored(client, flights):
    """A charset parameter, a byte order mark, the instant with an offset: the same flight, 200."""
    body = json.dumps(request_body(flights.iloc[0])).encode()
    expected = client.post("/predict", json=request_body(flights.iloc[0])).json()
    for content, media in (
        (body, "application/json; charset=utf-8"),
        (b"\xef\xbb\xbf" + body, "application/json"),
        (body, "application/problem+json"),
    ):
        response = client.post("/predict", content=content, headers={"content-type": media})
        assert response.status_code == 200 and response.json() == expected, (media, response.text)


def test_the_quick_path_answers_as_the_route_byte_for_byte(client, flights, monkeypatch):
    """POST /predict sent as application/json is answered by QuickPredict (middleware.py) without FastAPI's
    route; with a charset parameter it goes through the route. Both give the same status, headers and
    bytes: a prediction, an unknown flight and an unknown airport (raised while scoring), a malformed
    flight (the quick path hands it to the route)."""
    from mlops_assets.serving.errors import StrictJSONRequest

    routed = []
    decode = StrictJSONRequest.json

    async def counted(self):
        routed.append(self.url.path)
        return await decode(self)

    monkeypatch.setattr(StrictJSONRequest, "json", counted)
    good = request_body(flights.iloc[2])
    for body, status in (
        (good, 200),
        ({**good, "flight_number": 9999}, 422),
        ({**good, "dest": "QQQ"}, 422),
        ({**good, "flight_number": "x"}, 422),
    ):
        content = json.dumps(body).encode()
        routed.clear()
        quick = client.post("/predict", content=content, headers={"content-type": "application/json"})
        assert len(routed) == (0 if body["flight_number"] != "x" else 1), "the quick path answered"
        route = client.post(
            "/predict", content=content, headers={"content-type": "application/json; charset=utf-8"}
        )
        assert routed[-1] == "/predict", "the route answered"
        assert quick.status_code == route.status_code == status, quick.text
        assert quick.content == route.content
        assert quick.headers.items() == route.headers.items()


def test_a_wrong_path_or_method_gets_404_or_405_in_the_same_shape(client):
    missing = client.post("/predict/one", json={})
    assert missing.status_code == 404 and errors_of(missing) == [(("path",), "not_found")]
    assert_documented_shape(missing)
    for method, path in (("GET", "/predict"), ("PUT", "/predict/batch"), ("POST", "/health")):
        response = client.request(method, path)
        assert response.status_code == 405 and errors_of(response) == [(("method",), "method_not_allowed")]
        assert_documented_shape(response)
        assert response.headers["allow"] in response.json()["detail"][0]["msg"]


def test_the_openapi_schema_documents_every_error_of_the_endpoints(client):
    schema = client.get("/openapi.json").json()
    for path in ("/predict", "/predict/batch"):
        responses = schema["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "413", "415", "422", "503"}
        for status in ("413", "415"):
            assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith(
                "ClientErrorBody"
            )
        assert responses["503"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "ServiceUnavailable"
        )
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"type", "loc", "msg"}


def test_a_departure_in_the_dst_hours_needs_an_offset():
    """New York's 2013 transitions: 2013-03-10 02:00-02:59 never happened, 2013-11-03 01:00-01:59 happened
    twice. Such a wall clock is refused with the offsets that name it; with an offset it is that instant;
    the minutes on either side are New York time as always."""
    import pydantic

    from mlops_assets.serving.flights import FlightRequest

    def departure(when: str) -> str:
        body = {
            "carrier": "UA",
            "flight_number": 1,
            "origin": "EWR",
            "dest": "IAH",
            "scheduled_departure": when,
        }
        return FlightRequest.model_validate(body).scheduled_departure.strftime("%Y-%m-%dT%H:%MZ")

    def refusal(when: str) -> tuple[str, str]:
        with pytest.raises(pydantic.ValidationError) as error:
            departure(when)
        (entry,) = error.value.errors()
        return entry["type"], entry["msg"]

    assert departure("2013-11-03T00:59") == "2013-11-03T04:59Z"  # EDT
    assert departure("2013-11-03T02:00") == "2013-11-03T07:00Z"  # EST
    for wall in ("2013-11-03T01:00", "2013-11-03T01:30", "2013-11-03T01:59", "2013-11-03 01:30"):
        kind, msg = refusal(wall)
        assert kind == "datetime_ambiguous" and "-04:00" in msg and "-05:00" in msg, msg
    kind, msg = refusal("2013-11-03T01:30")
    assert "2013-11-03T01:30-04:00 (EDT, the first) or 2013-11-03T01:30-05:00 (EST, the second)" in msg, msg
    assert departure("2013-11-03T01:30-04:00") == "2013-11-03T05:30Z"
    assert departure("2013-11-03T01:30-05:00") == "2013-11-03T06:30Z"
    assert departure("2013-11-03T06:30Z") == "2013-11-03T06:30Z"

    assert departure("2013-03-10T01:59") == "2013-03-10T06:59Z"  # EST
    assert departure("2013-03-10T03:00") == "2013-03-10T07:00Z"  # EDT
    for wall in ("2013-03-10T02:00", "2013-03-10T02:30", "2013-03-10T02:59"):
        kind, msg = refusal(wall)
        assert kind == "datetime_nonexistent" and "offset" in msg, msg
    kind, msg = refusal("2013-03-10T02:30")
    assert "2013-03-10T02:30-05:00 is 03:30 EDT, 2013-03-10T02:30-04:00 is 01:30 EST" in msg, msg
    assert departure("2013-03-10T02:30-05:00") == "2013-03-10T07:30Z"


def test_extreme_offsets_near_the_data_are_judged_by_the_new_york_day():
    """The range is checked on the given wall clock before any conversion (which overflowed at the ends
    of Python's range), with a margin wide enough that an offset never refuses a New York day of the data."""
    import pydantic

    from mlops_assets.serving.flights import FlightRequest

    def validate(when: str) -> FlightRequest:
        body = {
            "carrier": "UA",
            "flight_number": 1,
            "origin": "EWR",
            "dest": "IAH",
            "scheduled_departure": when,
        }
        return FlightRequest.model_validate(body)

    assert validate("2014-01-02T00:00+23:59").local_day == "2013-12-31"  # 19:01 on Dec 31 in New York
    assert validate("2012-12-31T08:00-23:00").local_day == "2013-01-01"
    for when in (
        "2012-12-30T23:00-23:00",
        "2014-01-01T05:00Z",
        "0001-01-01T00:00+23:59",
        "9999-12-31T23:59-23:59",
    ):
        with pytest.raises(pydantic.ValidationError, match="date_outside_data"):
            validate(when)


def test_an_echoed_value_is_always_renderable():
    """json_safe: whatever a client sent and pydantic echoes, JSONResponse can render."""
    from fastapi.responses import JSONResponse

    from mlops_assets.serving.errors import MAX_ECHO_DEPTH, json_safe

    deep: list = []
    for _ in range(5000):
        deep = [deep]
    value = {"\ud800": [float("nan"), float("inf"), -float("inf"), "a\udfffb", b"\xff", 10**4000, deep]}
    safe = json_safe(value)
    JSONResponse(safe).render(safe)  # raises on NaN, lone surrogates, bytes or unbounded depth
    assert safe == {
        "\\ud800": ["NaN", "Infinity", "-Infinity", "a\\udfffb", "\\xff", 10**4000, safe["\\ud800"][6]]
    }
    depth, item = 0, safe["\\ud800"][6]
    while isinstance(item, list):
        depth, item = depth + 1, item[0]
    assert item == "..." and depth == MAX_ECHO_DEPTH - 2


def test_a_huge_body_gets_a_413_declared_or_streamed(champion_home, flights):
    import httpx

    huge = json.dumps({"flights": [request_body(flights.iloc[0])] * 20_000}).encode()  # about 2.6 MB
    assert len(huge) > 1 << 20
    with served(make_app(champion_home)) as url, httpx.Client(base_url=url, timeout=60) as http:
        declared = http.post("/predict/batch", content=huge, headers={"content-type": "application/json"})
        assert errors_of(declared) == [(("body",), "body_too_large")] and declared.status_code == 413

        def chunks():  # no Content-Length: Transfer-Encoding chunked, counted as it arrives
            for start in range(0, len(huge), 64 * 1024):
                yield huge[start : start + 64 * 1024]

        streamed = http.post("/predict/batch", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "limit is 1048576 bytes" in streamed.json()["detail"][0]["msg"]
        assert http.post("/predict", json=request_body(flights.iloc[0])).status_code == 200


# ---- 4. health, schema, log ----------------------------------------------------------------------------


def test_health_names_the_champion_and_the_store(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["champion_version"] == "1"
    assert body["feature_store"] == "sqlite" and body["feature_service"] == SERVICE
    assert dt.datetime.fromisoformat(body["model_loaded_at"]) <= dt.datetime.now(dt.UTC)
    assert body["model_uri"] == "models:/flight_delay/1"


def test_without_a_champion_health_and_predict_answer_503(champion_home, tmp_path, flights):
    from fastapi.testclient import TestClient

    from mlops_assets.serving.app import ServiceConfig, create_app

    parts = resources(champion_home)
    empty = type(parts["mlflow"])(tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}")
    with TestClient(create_app(parts["feast"], empty, parts["lake"], ServiceConfig())) as http:
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "no_champion"
        response = http.post("/predict", json=request_body(flights.iloc[0]))
        assert response.status_code == 503 and "no champion" in response.json()["detail"]


def test_the_openapi_schema_documents_the_endpoints(client):
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health"} <= set(schema["paths"])
    flight = schema["components"]["schemas"]["FlightRequest"]
    assert set(flight["required"]) == {"carrier", "flight_number", "origin", "dest", "scheduled_departure"}
    assert flight["properties"]["origin"]["enum"] == ["EWR", "JFK", "LGA"]
    assert client.get("/docs").status_code == 200


def test_every_prediction_is_logged_to_the_lake(champion_home, flights, tmp_path):
    from fastapi.testclient import TestClient

    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.serving.app import ServiceConfig, create_app

    # A lake of its own (with the reference tables the service checks codes against): the other apps of
    # this module flush their own predictions into champion_home's lake meanwhile.
    lake = LocalObjectStore(root=str(tmp_path / "lake"))
    for table in ("airlines", "airports"):
        lake.write_bytes(
            f"raw/{table}.parquet", (champion_home / "lake" / "raw" / f"{table}.parquet").read_bytes()
        )
    parts = resources(champion_home)
    config = ServiceConfig(poll_interval_s=POLL_S, log_flush_interval_s=3600)  # only the shutdown flush
    folder = tmp_path / "lake" / "predictions" / "online"
    days = {dt.datetime.now(dt.UTC).date().isoformat()}
    with TestClient(create_app(parts["feast"], parts["mlflow"], lake, config)) as http:
        single = http.post("/predict", json=request_body(flights.iloc[0])).json()
        batch = http.post(
            "/predict/batch", json={"flights": [request_body(f) for f in flights.head(4).itertuples()]}
        )
        assert batch.status_code == 200
        assert not folder.exists()  # nothing written on the request path
    days.add(dt.datetime.now(dt.UTC).date().isoformat())
    written = sorted(folder.glob("*/*.parquet"))
    assert len(written) == 1 and written[0].parent.name in days  # the UTC day of the requests
    log = pd.read_parquet(written[0])
    assert len(log) == 5 and log["batch_size"].tolist() == [1, 4, 4, 4, 4]
    assert log["flight_id"].tolist() == [single["flight_id"], *flights.head(4)["flight_id"]]
    assert log.loc[0, "probability_late"] == pytest.approx(single["probability_late"])
    assert (log["model_version"] == "1").all() and (log["latency_ms"] > 0).all()
    assert {"decision", "decision_threshold", "requested_at", "scheduled_departure_utc"} <= set(log.columns)
    assert (log["local_day"] == DAY).all()  # the New York day of the flights' departure
    assert "weather_hourly__temp" in log.columns and log["flight_schedule__distance"].notna().all()


def test_the_log_writes_a_file_per_request_day_and_keeps_rows_the_lake_refused(tmp_path):
    """Batches of different request days and columns (a new champion may read other features) become one
    Parquet file per UTC day of the requests with every row, nulls where a batch had no such column; a
    failed write loses nothing."""
    from mlops_assets.resources.storage import LocalObjectStore
    from mlops_assets.serving.prediction_log import PredictionLog

    class FailingOnce:  # the lake, unreachable for the first write
        def __init__(self, lake: LocalObjectStore) -> None:
            self.lake, self.failed = lake, False

        def write_bytes(self, key: str, data: bytes) -> None:
            if not self.failed:
                self.failed = True
                raise OSError("the lake is away")
            self.lake.write_bytes(key, data)

    before = dt.datetime(2026, 3, 1, 23, 59, 59, tzinfo=dt.UTC)
    after = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))  # 03-01 20:00 UTC
    midnight = dt.datetime(2026, 3, 2, 0, 0, 1, tzinfo=dt.UTC)
    log = PredictionLog(FailingOnce(LocalObjectStore(root=str(tmp_path / "lake"))), flush_interval_s=3600)
    log.record({"requested_at": [before], "local_day": ["2013-03-01"], "flight_id": ["a"], "v1__x": [1.5]}, 1)
    log.record({"requested_at": [midnight] * 2, "local_day": ["2013-03-02", "2013-03-01"],
                "flight_id": ["b", "c"], "v2__y": [7, None]}, 2)  # fmt: skip
    log.record({"requested_at": [after], "local_day": ["2013-03-05"], "flight_id": ["d"], "v2__y": [3]}, 1)
    assert log.flush() == [] and log.stats()["rows_pending"] == 4 and log.stats()["last_error"]
    keys = log.flush()
    assert [key.split("/")[2] for key in keys] == ["2026-03-01", "2026-03-02"]
    first = pd.read_parquet(tmp_path / "lake" / keys[0])
    assert first["flight_id"].tolist() == ["a", "d"] and first["local_day"].tolist() == [
        "2013-03-01",
        "2013-03-05",
    ]
    assert first["v1__x"].tolist()[0] == 1.5 and first["v1__x"].isna().tolist() == [False, True]
    assert first["v2__y"].isna().tolist() == [True, False] and first["v2__y"].tolist()[1] == 3
    second = pd.read_parquet(tmp_path / "lake" / keys[1])
    assert second["flight_id"].tolist() == ["b", "c"] and "v1__x" not in second.columns
    assert second["v2__y"].tolist()[0] == 7 and second["v2__y"].isna().tolist() == [False, True]
    assert log.stats() | {"last_error": None} == {
        "rows_written": 4, "rows_pending": 0, "rows_dropped": 0, "files_written": 2, "flush_failures": 1,
        "last_error": None,
    }  # fmt: skip


# ---- 5. a real server under load -----------------------------------------------------------------------


def _redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping())
    except Exception:
        return False


def test_redis_online_store_serves_the_same_predictions(champion_home, client, flights):
    import redis

    from mlops_assets.features.online import MATERIALIZE_LOOKBACK, local_days_utc_span
    from mlops_assets.serving.features import FeatureReader

    assert _redis_available(), "this test needs the machine's Redis at 127.0.0.1:6379"
    project = f"serving_{uuid.uuid4().hex[:8]}"
    feast = resources(champion_home, "redis", project)["feast"]
    try:
        feast.apply()
        start, end = local_days_utc_span(*TRAINING_WINDOW)  # the window the SQLite store holds
        feast.materialize(start - MATERIALIZE_LOOKBACK, end - dt.timedelta(microseconds=1))
        reader, rows = FeatureReader(feast), window_rows(champion_home)
        assert_reads_as_feast(reader, feast, rows)
        # The server closes the connection the reader keeps (an idle timeout, a restart): the next read
        # reconnects and answers the same.
        held = reader._hmget.__self__._local.connection
        held.send_command("CLIENT", "ID")
        assert redis.Redis(host="127.0.0.1", port=6379).client_kill_filter(_id=held.read_response()) == 1
        assert reader.read(rows[:3], SERVICE) == feast.online_features(rows[:3], SERVICE)
        bodies = [request_body(f) for f in flights.head(10).itertuples()]
        with served(make_app(champion_home, "redis", project)) as url:
            import httpx

            health = httpx.get(f"{url}/health").json()
            assert health["feature_store"] == "redis"
            on_redis = httpx.post(f"{url}/predict/batch", json={"flights": bodies}, timeout=30).json()
        on_sqlite = client.post("/predict/batch", json={"flights": bodies}).json()
        assert [p["flight_id"] for p in on_redis["predictions"]] == [
            p["flight_id"] for p in on_sqlite["predictions"]
        ]
        np.testing.assert_allclose(
            [p["probability_late"] for p in on_redis["predictions"]],
            [p["probability_late"] for p in on_sqlite["predictions"]],
            atol=1e-9,
        )
    finally:
        keys = list(redis.Redis(host="127.0.0.1", port=6379).scan_iter(match=f"*{project}".encode()))
        if keys:
            redis.Redis(host="127.0.0.1", port=6379).delete(*keys)


def test_materializing_the_online_store_while_serving_fails_no_request(champion_home, flights):
    """The daily features/online_store run commits MATERIALIZING states to the registry file the server
    reads, rewriting it in place. A plain Feast client refuses to read such views (the control below);
    the service keeps serving the last values and re-reads a registry caught mid-write."""
    from mlops_assets.features.online import MATERIALIZE_LOOKBACK, local_days_utc_span

    bodies = [request_body(f) for f in flights.head(20).itertuples()]
    rows = [
        {"flight_id": f.flight_id, "carrier": f.carrier, "origin": f.origin, "dest": f.dest,
         "route": f"{f.origin}-{f.dest}"}
        for f in flights.head(1).itertuples()
    ]  # fmt: skip
    plain = resources(champion_home)["feast"]  # another FeatureStore on the same registry, as a reader
    plain.online_features(rows, SERVICE)
    refused, done = [], threading.Event()

    def control() -> None:
        while not done.is_set():
            try:
                plain.online_features(rows, SERVICE)
            except Exception as error:
                refused.append(str(error))
            time.sleep(0.01)

    materializer = resources(champion_home)["feast"]  # as the Dagster asset would, from another run
    start, end = local_days_utc_span(DAY, DAY)
    with served(make_app(champion_home)) as url, Load(url, bodies, threads=3) as load:
        probe = threading.Thread(target=control, daemon=True)
        probe.start()
        time.sleep(0.5)
        materializer.materialize(start - MATERIALIZE_LOOKBACK, end - dt.timedelta(microseconds=1))
        time.sleep(0.5)
        done.set()
        probe.join()
    assert refused, "the materialization never exposed a MATERIALIZING view: this test would prove nothing"
    assert not load.failures, load.failures[:5]
    assert sum(len(r) for r in load.results) > 50


def test_a_new_champion_takes_over_under_load_and_no_request_fails(champion_home, flights):
    from mlops_assets.training import registry
    from tests.test_training import TRAINING_KEYS, run_training, training_resources

    training = training_resources(champion_home)
    # Version 2: another family (the default, boosted trees, on shuffled labels), refused by the gate,
    # promoted by hand: the service swaps a network for trees under load.
    quick = {"shuffle_labels": True, "ensemble_size": 1, "max_epochs": 2}
    result = run_training(
        training, selection=TRAINING_KEYS[2:], ops={"models__flight_delay_model": {"config": quick}}
    )
    assert result.success
    client = training["mlflow"].client()
    assert registry.alias_version(client, "flight_delay", registry.CHALLENGER) == "2"
    client.set_model_version_tag("flight_delay", "2", "decision_threshold", "0.42")

    bodies = [request_body(f) for f in flights.head(20).itertuples()]
    try:
        with served(make_app(champion_home)) as url, Load(url, bodies) as load:
            time.sleep(1.0)
            before_swap = load.versions_seen()
            registry.promote(client, "flight_delay", "2", "test", "alias switch under load")
            deadline = time.monotonic() + 60
            while not all(r and r[-1][1] == "2" for r in load.results) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
    finally:
        registry.rollback(client, "flight_delay", "test")
    assert before_swap == {"1"}
    assert not load.failures, load.failures[:5]
    for results in load.results:
        versions = [version for _, version, _ in results]
        assert versions[0] == "1" and versions[-1] == "2", "every thread saw both models"
        switched = versions.index("2")
        assert set(versions[switched:]) == {"2"}, "once swapped, never back"
    # Each answer is its version's model on that flight: the new model, not the old one relabelled.
    feast = resources(champion_home)["feast"]
    served_flights = flights.head(20)
    reference = {
        version: dict(
            zip(
                served_flights["flight_id"],
                offline_probabilities(champion_home, version, served_flights, feast),
                strict=True,
            )
        )
        for version in ("1", "2")
    }
    answers = [answer for results in load.results for answer in results]
    assert len(answers) > 100, len(answers)
    for flight_id, version, probability in answers:
        assert probability == pytest.approx(reference[version][flight_id], abs=1e-6), (flight_id, version)
    assert max(abs(reference["1"][f] - reference["2"][f]) for f in reference["1"]) > 1e-3


# ---- 6. the command ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_mlops_serve_with_two_workers_runs_two_server_processes_that_answer(champion_home, flights, tmp_path):
    """`mlops serve --workers 2`: two server processes, each with the champion loaded, on one port."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MLOPS_HOME": str(champion_home), "DAGSTER_HOME": str(tmp_path)}
    command = [str(Path(sys.executable).parent / "mlops"), "serve", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/health").status_code == 200:
                        break
                time.sleep(1)
            else:
                raise AssertionError("mlops serve --workers 2 did not become healthy")
            workers = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout
            assert len(workers.split()) >= 2
            # new connections are spread over the processes; every one answers with the champion
            answers = [httpx.post(f"http://127.0.0.1:{port}/predict", json=request_body(flights.iloc[i]))
                       for i in range(20)]  # fmt: skip
            assert [a.status_code for a in answers] == [200] * 20
            assert {a.json()["model_version"] for a in answers} == {"1"}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    assert "Started parent process" in server.stderr.read()
