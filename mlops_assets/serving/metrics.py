"""The prediction service's Prometheus metrics, served at GET /metrics (prometheus_client's text format).

    mlops_serving_request_duration_seconds{endpoint, status}  histogram: from receiving a request to the
                                                  last byte of its answer, as the ASGI app sees it
    mlops_serving_stage_duration_seconds{stage}   histogram: online_read (Feast), model (the forward pass)
    mlops_serving_errors_total{status, kind}      an error answer by kind: a 422's error types
                                                  (unknown_airport, int_type, json_invalid...),
                                                  body_too_large (413), no_champion / online_store (503)
    mlops_serving_predicted_probability           histogram of every probability served
    mlops_serving_champion_version, _loaded       the champion serving now (gauges)
    mlops_serving_champion_swaps_total            champions this process loaded (each move of the alias)
    mlops_serving_prediction_log_backlog_rows     the prediction log: rows waiting for the lake, and
    mlops_serving_prediction_log_{rows_written,rows_dropped,flush_failures}_total
    mlops_serving_shadow_{scored,dropped,skipped,failed}_total  with `--shadow`: flights the challenger
                                                  scored, dropped (queue full), skipped (no challenger
                                                  other than the champion), failed
    mlops_serving_shadow_backlog_requests, mlops_serving_shadow_challenger_version

Labels are bounded: `endpoint` is one of ENDPOINTS or "other" (a 404 on any path), `status` an HTTP status,
`kind` an error type the service itself names; never a flight, a carrier or a client.

The service is tuned for latency (docs/serving.md), so a request pays for no more than it must: the
children of each labelled metric are bound once (`labels()` hashes and locks: a dict lookup does not),
the request wrapper does two clock reads, one dict lookup and one `observe`, and everything that describes
the service's state (champion, log, retries) is read only when Prometheus scrapes (`ServiceStateCollector`).
An error's kind is read from its JSON body, on the error path only.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

ENDPOINTS = ("/predict", "/predict/batch", "/health", "/metrics")
OTHER = "other"
STAGES = ("online_read", "model")
# Bound (and so exported, at 0) from the start: 200 on every endpoint, and the errors of the prediction
# endpoints, so an error ratio is 0 rather than absent before the first error. Every other pair is bound
# when first seen. Few pairs keep a scrape small: each costs a series per bucket.
PREDICTION_ENDPOINTS = ("/predict", "/predict/batch")
ERROR_STATUSES = (413, 415, 422, 503)
# One flight answers in about 1-3 ms here (docs/serving.md); a batch of 100 in about 10 ms. The buckets
# resolve the 5 ms p99 goal and reach past the client's timeouts.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)  # fmt: skip
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5)
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 0.05 .. 1.0
# The 503 answers the service gives (app.py) and the kind each is counted as.
NO_CHAMPION_DETAIL = "no champion model in the registry yet"
STORE_DETAIL = "the online feature store cannot be read"
_KIND = re.compile(r"[a-z][a-z0-9_]{0,47}")  # an error type as the service and pydantic name them


def keep_values_in_process() -> None:
    """Makes the metrics created from now on keep their values in this process's memory.

    prometheus_client picks where values live once, process-wide, when it is first imported: in memory,
    or in files of PROMETHEUS_MULTIPROC_DIR when that is set. Feast 0.67 sets it (to a temporary folder
    that the process which made it deletes at exit) the first time `feast.metrics` is imported, which an
    online read or a materialization does, and child processes inherit it. In files, every metric of one
    name in the process shares its values (two apps in one process count each other's requests) and a
    label pair first seen after that folder is gone cannot be counted. The service exports its own
    registry from one process, so memory is right; Feast's own metrics stay off (they are opt-in).
    `values.ValueClass` is read each time a metric or child is made; tests/test_metrics.py guards it."""
    from prometheus_client import values

    if values.ValueClass is not values.MutexValue:
        values.ValueClass = values.MutexValue


class ServiceMetrics:
    """The service's metrics in their own registry (one app, one registry: tests build many apps in one
    process, and the process-wide default registry would refuse the second set of names)."""

    def __init__(self) -> None:
        # No `_created` series (a timestamp per child, twice the lines of a scrape; Prometheus does not
        # need them to compute rates). prometheus_client's switch is process-wide: this is the service's
        # process, and nothing else in it reads them.
        disable_created_metrics()
        keep_values_in_process()
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram(
            "mlops_serving_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its answer.",
            ["endpoint", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        stage = Histogram(
            "mlops_serving_stage_duration_seconds",
            "Time of one stage of scoring a request: online_read (the Feast online store), model (scoring).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.online_read = stage.labels("online_read")
        self.model = stage.labels("model")
        self.errors = Counter(
            "mlops_serving_errors",
            "Requests answered with an error, by status and kind (a 422's error types, body_too_large, "
            "no_champion, online_store...).",
            ["status", "kind"],
            registry=self.registry,
        )
        self.probability = Histogram(
            "mlops_serving_predicted_probability",
            "Probabilities of a late arrival served (one observation per flight).",
            buckets=PROBABILITY_BUCKETS,
            registry=self.registry,
        )
        # endpoint -> status -> child, bound now for the answers a healthy service gives
        self._latency: dict[str, dict[int, Any]] = {
            endpoint: {
                status: self.latency.labels(endpoint, str(status))
                for status in (200, *(ERROR_STATUSES if endpoint in PREDICTION_ENDPOINTS else ()))
            }
            for endpoint in (*ENDPOINTS, OTHER)
        }

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        by_status = self._latency.get(path) or self._latency[OTHER]
        child = by_status.get(status)
        if child is None:  # a status first seen: bound once (statuses are few)
            child = by_status[status] = self.latency.labels(path if path in self._latency else OTHER, status)
        child.observe(seconds)

    def count_error(self, status: int, body: bytes) -> None:
        """Counts an error answer once per distinct kind it names (a batch with 40 unknown airports is one
        request with one kind)."""
        for kind in error_kinds(status, body):
            self.errors.labels(str(status), kind).inc()

    def observe_probabilities(self, probabilities) -> None:
        observe = self.probability.observe
        for p in probabilities:
            observe(float(p))

    def add_state(self, service: Any) -> None:
        """What the service's state says at each scrape (champion, prediction log, online read retries)."""
        self.registry.register(ServiceStateCollector(service))


def error_kinds(status: int, body: bytes) -> list[str]:
    """The kinds an error body names: `detail[*].type` of the list shape (422, 413, 415, 404, 405), or for
    `detail: "..."` (503) the reason the service gave."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return ["unreadable"]
    if isinstance(detail, list):
        kinds = {entry.get("type") for entry in detail if isinstance(entry, dict)}
        return sorted(k if isinstance(k, str) and _KIND.fullmatch(k) else "other" for k in kinds) or ["other"]
    if isinstance(detail, str):
        if detail.startswith(NO_CHAMPION_DETAIL):
            return ["no_champion"]
        if detail.startswith(STORE_DETAIL):
            return ["online_store"]
    return ["other"] if status < 500 else ["server_error"]


class Instrumented:
    """ASGI middleware, outermost: times every HTTP request by endpoint and status, counts error answers
    by kind. The body of an answer is looked at only when its status is 400 or more."""

    def __init__(self, app, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an app that raised before answering: uvicorn sends a 500
        error_body: list[bytes] | None = None

        async def timed_send(message) -> None:
            nonlocal status, error_body
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                if status >= 400:
                    error_body = []
            elif kind == "http.response.body":
                if error_body is not None:
                    error_body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await send(message)
                    self._done(scope["path"], status, started, error_body)
                    return
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            self._done(scope["path"], 500, started, [b""])
            raise

    def _done(self, path: str, status: int, started: float, error_body: list[bytes] | None) -> None:
        self.metrics.observe_request(path, status, time.perf_counter() - started)
        if error_body is not None:
            self.metrics.count_error(status, b"".join(error_body))


class ServiceStateCollector(Collector):
    """Reads the service's state when Prometheus scrapes: nothing on the request path keeps these."""

    def __init__(self, service: Any) -> None:
        self._service = service

    def describe(self) -> list:
        return []  # registered without a first collect: the service may not be started yet

    def collect(self) -> Iterator:
        service = self._service
        champion = service.holder.current
        version = GaugeMetricFamily(
            "mlops_serving_champion_version",
            "The registered model version serving now (the `champion` alias when it was loaded); absent "
            "while there is none.",
        )
        loaded = GaugeMetricFamily("mlops_serving_champion_loaded", "1 while a champion serves, else 0.")
        loaded.add_metric([], 1.0 if champion else 0.0)
        if champion is not None:
            version.add_metric([], _number(champion.version))
        yield version
        yield loaded
        if champion is not None:
            yield GaugeMetricFamily(
                "mlops_serving_champion_loaded_timestamp_seconds",
                "When the serving champion was loaded (Unix time).",
                value=champion.loaded_at.timestamp(),
            )
        yield CounterMetricFamily(
            "mlops_serving_champion_swaps",
            "Champions loaded by this process, the first one included (each move of the alias it saw).",
            value=service.holder.swaps,
        )
        yield CounterMetricFamily(
            "mlops_serving_champion_load_failures",
            "Champion versions that failed to load (the old one kept serving).",
            value=len(service.holder.failed_versions),
        )
        stats = service.log.stats()
        yield GaugeMetricFamily(
            "mlops_serving_prediction_log_backlog_rows",
            "Prediction log rows waiting to be written to the lake.",
            value=stats["rows_pending"],
        )
        for name, text in (
            ("rows_written", "Prediction log rows written to the lake."),
            ("rows_dropped", "Prediction log rows dropped (the lake was unreachable for too long)."),
            ("flush_failures", "Prediction log flushes that could not write to the lake."),
        ):
            yield CounterMetricFamily(f"mlops_serving_prediction_log_{name}", text, value=stats[name])
        if service.shadow is not None:
            yield from _shadow_metrics(service.shadow.stats())
        reader = service.reader
        yield CounterMetricFamily(
            "mlops_serving_online_read_retries",
            "Online store reads retried (a feature service resolved again after a registry change).",
            value=reader.retries if reader is not None else 0,
        )


def _shadow_metrics(stats: dict[str, Any]) -> Iterator:
    for name, text in (
        ("scored", "Flights the challenger scored beside the champion (serving/shadow.py)."),
        ("dropped", "Flights logged without a challenger score: the shadow queue was full."),
        ("skipped", "Flights with no challenger to score (none, or the champion's own version)."),
        ("failed", "Flights the challenger failed to score."),
    ):
        yield CounterMetricFamily(f"mlops_serving_shadow_{name}", text, value=stats[name])
    yield GaugeMetricFamily(
        "mlops_serving_shadow_backlog_requests",
        "Requests waiting for the shadow worker.",
        value=stats["backlog"],
    )
    if stats["challenger_version"] is not None:
        yield GaugeMetricFamily(
            "mlops_serving_shadow_challenger_version",
            "The challenger version scoring in the shadow; absent while there is none.",
            value=_number(stats["challenger_version"]),
        )


def _number(version: str) -> float:
    """MLflow versions are integers; anything else would not be a gauge value."""
    try:
        return float(version)
    except ValueError:
        return float("nan")
