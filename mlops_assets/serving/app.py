"""The online prediction service: FastAPI over the Feast online store and the registry's champion.

    POST /predict         one flight  -> probability, decision, threshold, model version
    POST /predict/batch   {"flights": [...]} (1..max_batch) -> the same for each, scored by one model
    GET  /health          200 with the champion's version and load time; 503 while there is none
    GET  /metrics         Prometheus metrics (serving/metrics.py; `mlops serve --no-metrics` leaves it out)
    GET  /docs, /openapi.json

Status codes: 422 for anything wrong with the request (FastAPI's body, `detail: [{type, loc, msg, input}]`,
also for a body that is not JSON (not UTF-8, NaN, nested too deeply), unknown carriers or airports and
flights the online store has no schedule for), 413 in the same shape for a body over `max_body_bytes`
(declared by Content-Length or counted as it streams in), 415 for a body not sent as application/json,
404/405 in the same shape, 503 (`detail: "..."`) while no champion exists or the online store cannot be read.

One flight is scored on the event loop: its work (one Redis round trip, a forward pass; well under 1 ms)
costs less than handing it to a thread would, and a process scores one request at a time either way (the
GIL). A valid one flight sent as application/json is answered by `QuickPredict`, the same checks without
FastAPI's per-request machinery; everything else goes through FastAPI's routes.
A batch, up to `max_batch` flights, runs in Starlette's thread pool, so one-flight requests keep being
answered while it runs. The champion swap happens in another thread and never makes a request wait;
`mlops serve --workers N` runs N such processes.
"""

import contextlib
import datetime as dt
import gc
import json
import logging
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops_assets.serving.champion import DEFAULT_THRESHOLD, Champion, ChampionHolder
from mlops_assets.serving.errors import (
    StrictJSONRoute,
    error_responses,
    http_error,
    validation_error,
)
from mlops_assets.serving.features import FeatureReader, unscheduled
from mlops_assets.serving.flights import (
    FlightRequest,
    KnownCodes,
    batch_request_model,
    flight_loc,
    load_known_codes,
)
from mlops_assets.serving.metrics import NO_CHAMPION_DETAIL, STORE_DETAIL, Instrumented, ServiceMetrics
from mlops_assets.serving.middleware import BodyLimit, QuickPredict
from mlops_assets.serving.prediction_log import DAY_COLUMN, REQUESTED_AT, PredictionLog
from mlops_assets.serving.shadow import ShadowScorer

log = logging.getLogger("mlops.serving")
# Feast needs at least one entity row; a flight that does not exist reads nulls.
WARM_UP_ROW = {"flight_id": "warm-up", "carrier": "AA", "origin": "JFK", "dest": "LAX", "route": "JFK-LAX"}


@dataclass(frozen=True)
class ServiceConfig:
    """What an operator may change (`mlops serve --help` exposes each)."""

    default_threshold: float = DEFAULT_THRESHOLD  # for versions without a `decision_threshold` tag
    poll_interval_s: float = 2.0  # how often the `champion` alias is checked
    max_batch: int = 1000  # flights per /predict/batch request
    max_body_bytes: int = 1 << 20  # 1 MiB: about 9,000 flights of JSON, far above max_batch
    log_flush_interval_s: float = 5.0  # prediction log -> lake
    registry_refresh_s: float = 60.0  # Feast registry re-read, off the request path
    switch_interval_s: float = 0.0005  # the interpreter's GIL switch interval while serving (see below)
    metrics: bool = True  # GET /metrics (serving/metrics.py); off only to measure what it costs
    shadow: bool = False  # also score the `challenger` off the request path (serving/shadow.py)
    shadow_queue_size: int = 1000  # requests waiting for the shadow worker; beyond, dropped and counted


# ---- response models -----------------------------------------------------------------------------------


class Prediction(BaseModel):
    flight_id: str = Field(description="The flight's key in the feature store (fct_flights.flight_id).")
    probability_late: float = Field(description="Probability of arriving more than 15 minutes late.")
    decision: Literal["late", "on_time"] = Field(description="late when probability_late >= threshold.")
    decision_threshold: float
    threshold_source: Literal["model_version_tag", "service_default"]
    model_version: str = Field(description="Version of the registered model flight_delay that scored it.")


class BatchPrediction(BaseModel):
    model_version: str = Field(description="One model scores a whole batch, even across a swap.")
    predictions: list[Prediction]


class Health(BaseModel):
    status: Literal["ok", "no_champion"]
    champion_version: str | None
    model_uri: str | None
    model_loaded_at: dt.datetime | None
    decision_threshold: float | None
    threshold_source: str | None
    feature_store: str
    feature_service: str | None
    online_read_retries: int
    champion_error: str | None
    prediction_log: dict[str, Any]
    shadow: dict[str, Any] | None = Field(
        default=None, description="With shadow scoring on: the challenger and its counts (flights)."
    )


# ---- the service ---------------------------------------------------------------------------------------


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's sight.

    Feast, MLflow, torch and dagster leave hundreds of thousands of long-lived objects, and a full
    collection scanning them all with every thread stopped set the tail latency (docs/serving.md).
    Frozen objects are never scanned again; what requests allocate is still collected. Called once
    started and after each champion swap (the new model's objects)."""
    gc.collect()
    gc.freeze()


class PredictionService:
    """The parts a request uses: online features, the champion, the reference codes, the log."""

    def __init__(
        self, feast, mlflow, lake, config: ServiceConfig, metrics: ServiceMetrics | None = None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._feast, self._lake = feast, lake
        self.holder = ChampionHolder(mlflow, config.default_threshold, config.poll_interval_s, freeze_heap)
        self.log = PredictionLog(lake, config.log_flush_interval_s)
        self.shadow: ShadowScorer | None = None
        if config.shadow:
            self.shadow = ShadowScorer(
                mlflow,
                self.log.record,
                lambda rows, service: self.reader.read(rows, service),
                lambda: self.holder.current.version if self.holder.current else None,
                config.shadow_queue_size,
                config.poll_interval_s,
                config.default_threshold,
                freeze_heap,  # as after a champion swap: the challenger's objects out of the collector's way
            )
        self.reader: FeatureReader | None = None
        self._codes: KnownCodes | None = None
        self._codes_by_version: dict[str, KnownCodes] = {}
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._switch_interval = sys.getswitchinterval()

    def start(self) -> None:
        """Open the online store, load the reference codes and the champion (if any), start the threads.

        A short switch interval: a request that gives up the GIL for its Redis round trip waits up to one
        interval to get it back from the background threads (log flush, champion poll, registry refresh),
        so CPython's 5 ms default turns their work into convoys of waits (measured: docs/serving.md)."""
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(self.config.switch_interval_s)
        self.reader = FeatureReader(self._feast)
        self._codes = load_known_codes(self._lake)
        try:
            self.holder.check()
        except Exception as error:  # the registry is down at startup: serve 503 until it is back
            log.warning(f"no champion at startup: {error}")
        if self.holder.current is not None:  # registry and connection warm before the first request
            self.reader.read([WARM_UP_ROW], self.holder.current.feature_service)
        self.log.start()
        if self.shadow is not None:
            self.shadow.start()
        freeze_heap()
        self.holder.start()
        self._refresher = threading.Thread(target=self._refresh_registry, name="feast-registry", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        self._stop.set()
        self.holder.stop()
        if self.shadow is not None:  # before the log: what it still scores is flushed with the rest
            self.shadow.stop()
        self.log.stop()
        gc.unfreeze()  # the process may go on (tests): its objects are collectable again
        sys.setswitchinterval(self._switch_interval)

    def _refresh_registry(self) -> None:
        while not self._stop.wait(self.config.registry_refresh_s):
            try:
                self.reader.refresh_registry()
            except Exception as error:
                log.warning(f"could not refresh the Feast registry: {error}")

    def codes(self, champion: Champion) -> KnownCodes:
        """Reference codes plus the champion's own vocabulary (a code it was trained on is known)."""
        known = self._codes_by_version.get(champion.version)
        if known is None:
            vocabulary = champion.vocabulary
            known = KnownCodes(
                carriers=self._codes.carriers | set(vocabulary.get("carrier", ())),
                airports=self._codes.airports | set(vocabulary.get("dest", ())),
            )
            self._codes_by_version = {champion.version: known}
        return known

    def score(self, flights: list[FlightRequest], batch: bool) -> tuple[Champion, list[dict[str, Any]]]:
        """Read features, score with one champion, log; raises the 422/503 a request deserves."""
        started = time.perf_counter()
        champion = self.holder.current  # read once: this request scores with this model to the end
        if champion is None:
            raise HTTPException(503, f"{NO_CHAMPION_DETAIL}; try again later")
        errors = self.codes(champion).errors(flights, batch)
        if errors:
            raise RequestValidationError(errors)
        rows = [flight.entity_row() for flight in flights]
        read_at = time.perf_counter()
        try:
            online = self.reader.read(rows, champion.feature_service)
        except Exception as error:
            log.exception("online feature read failed")
            raise HTTPException(503, f"{STORE_DETAIL}: {error}") from None
        missing = unscheduled(online, len(rows))
        if missing:
            raise RequestValidationError([_unscheduled_error(flights[i], i, batch) for i in missing])
        scored_at = time.perf_counter()
        probabilities = champion.score(online)
        metrics = self.metrics
        if metrics is not None:  # pre-bound children: two observes and one per flight
            metrics.online_read.observe(scored_at - read_at)
            metrics.model.observe(time.perf_counter() - scored_at)
            metrics.observe_probabilities(probabilities)
        predictions = [
            {
                "flight_id": row["flight_id"],
                "probability_late": float(p),
                "decision": "late" if p >= champion.threshold else "on_time",
                "decision_threshold": champion.threshold,
                "threshold_source": champion.threshold_source,
                "model_version": champion.version,
            }
            for row, p in zip(rows, probabilities, strict=True)
        ]
        columns = self._columns(flights, online, predictions, (time.perf_counter() - started) * 1000)
        if self.shadow is None:
            self.log.record(columns, len(rows))
        else:  # the shadow worker logs them once the challenger has scored the same rows
            self.shadow.submit(champion, rows, online, columns, len(rows))
        return champion, predictions

    def _columns(self, flights, online: dict[str, list], predictions: list[dict], latency_ms: float) -> dict:
        n = len(flights)
        columns: dict[str, list] = {
            REQUESTED_AT: [dt.datetime.now(dt.UTC)] * n,
            "request_id": [uuid.uuid4().hex] * n,
            "batch_size": [n] * n,
            DAY_COLUMN: [f.local_day for f in flights],
            "carrier": [f.carrier for f in flights],
            "flight_number": [f.flight_number for f in flights],
            "origin": [f.origin for f in flights],
            "dest": [f.dest for f in flights],
            "scheduled_departure_utc": [f.scheduled_departure for f in flights],
        }
        for key in ("flight_id", "probability_late", "decision", "decision_threshold", "model_version"):
            columns[key] = [p[key] for p in predictions]
        columns["threshold_source"] = [predictions[0]["threshold_source"]] * n
        columns["latency_ms"] = [latency_ms] * n
        columns.update({name: values for name, values in online.items() if "__" in name})
        return columns

    def health(self) -> tuple[int, dict[str, Any]]:
        champion = self.holder.current
        body = {
            "status": "ok" if champion else "no_champion",
            "champion_version": champion.version if champion else None,
            "model_uri": champion.model_uri if champion else None,
            "model_loaded_at": champion.loaded_at if champion else None,
            "decision_threshold": champion.threshold if champion else None,
            "threshold_source": champion.threshold_source if champion else None,
            "feature_store": self.reader.store_type if self.reader else "not started",
            "feature_service": champion.feature_service if champion else None,
            "online_read_retries": self.reader.retries if self.reader else 0,
            "champion_error": self.holder.last_error,
            "prediction_log": self.log.stats(),
            "shadow": self.shadow.stats() if self.shadow is not None else None,
        }
        return (200 if champion else 503), body


def _unscheduled_error(flight: FlightRequest, index: int, batch: bool) -> dict[str, Any]:
    return {
        "type": "unknown_flight",
        "loc": [*flight_loc(index, batch), "scheduled_departure"],
        "msg": (
            f"no scheduled flight {flight.flight_id} in the online store: check carrier, flight_number, "
            "origin and scheduled_departure (or that day is not materialized yet)"
        ),
        "input": {
            "flight_number": flight.flight_number,
            "scheduled_departure": flight.scheduled_departure.isoformat(),
        },
    }


# ---- the HTTP layer ------------------------------------------------------------------------------------


def create_app(feast, mlflow, lake, config: ServiceConfig | None = None) -> FastAPI:
    """The app over resolved resources: a FeastResource, an MlflowResource and the lake ObjectStore."""
    config = config or ServiceConfig()
    metrics = ServiceMetrics() if config.metrics else None
    service = PredictionService(feast, mlflow, lake, config, metrics)
    if metrics is not None:
        metrics.add_state(service)
    batch_model = batch_request_model(config.max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="flight_delay online predictions",
        version="1",
        description=__doc__,
        lifespan=lifespan,
        exception_handlers={RequestValidationError: validation_error, StarletteHTTPException: http_error},
    )
    app.router.route_class = StrictJSONRoute  # before the routes: each reads its body through it
    app.state.service = service
    app.add_middleware(QuickPredict, service=service)  # inside BodyLimit: the limit applies first
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    if metrics is not None:  # outermost: a 413 from BodyLimit is timed and counted too
        app.add_middleware(Instrumented, metrics=metrics)
    client_errors = error_responses(413, 415, 503)

    # The response models document the answers; the endpoints return JSONResponse themselves, built from
    # plain values, so FastAPI does not validate each answer against them a second time.
    @app.post("/predict", response_model=Prediction, responses=client_errors)
    async def predict(flight: FlightRequest) -> JSONResponse:
        """Probability that one flight arrives more than 15 minutes late, and the decision."""
        _, predictions = service.score([flight], batch=False)
        return JSONResponse(predictions[0])

    @app.post("/predict/batch", response_model=BatchPrediction, responses=client_errors)
    def predict_batch(request: batch_model) -> JSONResponse:  # type: ignore[valid-type]
        """The same for up to `max_batch` flights, all scored by the same model version."""
        champion, predictions = service.score(request.flights, batch=True)
        return JSONResponse({"model_version": champion.version, "predictions": predictions})

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    def health() -> JSONResponse:
        status, body = service.health()
        return JSONResponse(Health(**body).model_dump(mode="json"), status_code=status)

    if metrics is not None:

        @app.get("/metrics", include_in_schema=False)
        def prometheus_metrics() -> Response:
            """Prometheus's text format (serving/metrics.py). In the thread pool, not on the event loop:
            rendering takes milliseconds on 2 busy cores (docs/operations.md), and the event loop keeps
            answering predictions meanwhile (it gets the GIL back every switch interval)."""
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def create_app_from_settings(settings, online_store: str | None = None, config: ServiceConfig | None = None):
    """The app of a profile: its Feast (optionally with another online store), MLflow and lake."""
    import dagster as dg

    from mlops_assets.resources.feature_store import feast_resource
    from mlops_assets.resources.storage import object_stores
    from mlops_assets.resources.tracking import mlflow_resource

    overrides = {"online_store": online_store} if online_store else {}
    resources = {
        "feast": feast_resource(settings, **overrides),
        "mlflow": mlflow_resource(settings),
        "lake": object_stores(settings)["lake"],
    }
    # EnvVar fields (production) are resolved here, when the command runs.
    with dg.build_resources(resources) as built:
        return create_app(built.feast, built.mlflow, built.lake, config)


WORKER_CONFIG_VARIABLE = "MLOPS_SERVE_WORKER_CONFIG"


def app_for_worker() -> FastAPI:
    """uvicorn's factory when `mlops serve --workers N` starts N processes: each builds its own app from
    the options `mlops serve` left in the environment (read here, when the worker starts)."""
    import os

    import torch

    from mlops_assets.lib.settings import load_settings

    options = json.loads(os.environ[WORKER_CONFIG_VARIABLE])  # ServiceConfig's fields and these two
    torch.set_num_threads(options.pop("torch_threads"))
    online_store = options.pop("online_store")
    return create_app_from_settings(load_settings(), online_store, ServiceConfig(**options))
