"""Shadow scoring: the registry's `challenger` scores what the `champion` answered, off the request path.

With `ServiceConfig(shadow=True)` (`mlops serve --shadow`) a request hands its prediction-log columns and
the online feature rows it already read to `ShadowScorer.submit`: one `put_nowait` on a bounded queue, no
model, no I/O. One background thread takes them in order, scores the same feature rows with the
challenger and appends `challenger_probability_late` and `challenger_version` to those columns before they
go to the prediction log, so each logged flight carries both models' probabilities side by side.

Bounded work: one worker thread, one queue of at most `queue_size` requests, and the requests that arrive
within `window_s` (up to `max_items`) scored in one model call. When the queue is full the request's
columns go straight to the log without challenger figures and the flights are counted as dropped: shadow
evidence is sampled under load, never paid for with a slower answer.

The challenger is loaded (serving/champion.py's `load_champion`, the same unwrapped bundle and warm-up)
only while the `challenger` alias names a version other than the champion's; a watcher thread re-checks
the alias every `poll_interval_s`. A challenger trained with another feature service reads its own
feature rows from the online store in the worker (same entity keys, the service it was trained with).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.serving.champion import Champion, load_champion, registry_client
from mlops_assets.training.registry import CHALLENGER, DEFAULT_THRESHOLD, alias_version

log = logging.getLogger("mlops.serving")

PROBABILITY_COLUMN = "challenger_probability_late"
VERSION_COLUMN = "challenger_version"
_STOP = object()


@dataclass
class _Item:
    champion_version: str
    feature_service: str
    rows: list[dict[str, Any]]
    online: dict[str, list]
    columns: dict[str, list]
    n: int


class ShadowScorer:
    """The challenger beside the champion: a bounded queue, one worker, counters for /metrics."""

    def __init__(
        self,
        mlflow: MlflowResource,
        record: Callable[[dict[str, list], int], None],
        read: Callable[[list[dict[str, Any]], str], dict[str, list]],
        champion_version: Callable[[], str | None],
        queue_size: int = 1000,
        poll_interval_s: float = 2.0,
        default_threshold: float = DEFAULT_THRESHOLD,
        on_load: Callable[[], None] | None = None,
        window_s: float = 0.05,
        max_items: int = 64,
    ) -> None:
        self._mlflow = mlflow
        self._record, self._read = record, read
        self._champion_version = champion_version
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._poll_interval_s = poll_interval_s
        self._default_threshold = default_threshold
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client = None
        self._failed_versions: set[str] = set()
        self._on_load = on_load
        self._window_s, self._max_items = window_s, max_items
        # Only the drop path takes it: requests on the event loop and in the thread pool may both drop.
        self._drop_lock = threading.Lock()
        self.challenger: Champion | None = None
        # Flights (rows), not requests: comparable with the prediction log's row counts.
        self.scored = self.dropped = self.skipped = self.failed = 0
        self.last_error: str | None = None

    # ---- the request path: one non-blocking put ------------------------------------------------------
    def submit(
        self,
        champion: Champion,
        rows: list[dict[str, Any]],
        online: dict[str, list],
        columns: dict[str, list],
        n: int,
    ) -> None:
        item = _Item(champion.version, champion.feature_service, rows, online, columns, n)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._drop_lock:
                self.dropped += n  # the worker is behind: log the champion's answer alone
            self._record(columns, n)

    def backlog(self) -> int:
        return self._queue.qsize()

    # ---- the challenger ------------------------------------------------------------------------------
    def check(self) -> None:
        """Load the `challenger` alias's version when it differs from the champion and from the one loaded;
        drop it when the alias is gone or names the champion (nothing to compare)."""
        if self._client is None:
            self._client = registry_client(self._mlflow)
        version = alias_version(self._client, self._mlflow.model_name, CHALLENGER)
        if version is None or version == self._champion_version():
            self.challenger = None
            return
        loaded = self.challenger
        if (loaded is not None and loaded.version == version) or version in self._failed_versions:
            return
        try:
            self.challenger = load_champion(self._mlflow, self._default_threshold, version)
        except Exception as error:  # a challenger that cannot load must not touch serving
            self._failed_versions.add(version)
            self.last_error = f"version {version}: {error}"
            log.exception(f"shadow: challenger version {version} failed to load")
            return
        if self._on_load is not None:
            self._on_load()
        log.info(f"shadow: challenger is version {version}")

    # ---- the background ------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self.check()
        except Exception as error:  # the registry is down: the watcher tries again
            log.warning(f"shadow: could not read the challenger alias: {error}")
        self._threads = [
            threading.Thread(target=self._work, name="shadow-worker", daemon=True),
            threading.Thread(target=self._watch, name="challenger-watcher", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Score what is queued, then stop (the prediction log is flushed after this). Idempotent."""
        self._stop.set()
        if not self._threads:
            return
        self._queue.put(_STOP, timeout=60)  # waits only while full, and the worker is draining it
        for thread in self._threads:
            thread.join(timeout=60)
        self._threads = []

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_interval_s):
            try:
                self.check()
            except Exception as error:
                self.last_error = f"registry: {error}"
                log.warning(f"shadow: could not poll the challenger alias: {error}")

    def _work(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            if items[0] is _STOP:
                return
            # Gather what arrives within the window and score it in one call: a model call costs far more
            # than a row (the trees: about 1.5 ms for one flight here), so under load the worker's CPU
            # grows with the rows, not the requests, and it wakes at most 1/window times a second.
            deadline = time.monotonic() + self._window_s
            while len(items) < self._max_items:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                items.append(item)
            self.process(items)

    def process(self, items: list[_Item]) -> None:
        """Score the requests' rows with the challenger and log each request's columns, in order; the log
        always gets the rows (without challenger figures when it cannot score them)."""
        challenger = self.challenger  # read once, as a request reads the champion
        groups: dict[tuple, list[_Item]] = {}
        for item in items:
            if challenger is None or challenger.version == item.champion_version:
                self.skipped += item.n
            else:
                groups.setdefault((item.feature_service, tuple(item.online)), []).append(item)
        for (service, _), group in groups.items():
            try:
                self._score(challenger, service, group)
            except Exception as error:
                self.failed += sum(item.n for item in group)
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning(
                    f"shadow: the challenger could not score {len(group)} requests: {self.last_error}"
                )
        for item in items:
            self._record(item.columns, item.n)

    def _score(self, challenger: Champion, service: str, group: list[_Item]) -> None:
        """One model call for requests whose online rows have the same columns; each gets its own slice."""
        if challenger.feature_service == service:
            online = {name: [v for item in group for v in item.online[name]] for name in group[0].online}
        else:  # the challenger's own service: its rows for the same entity keys
            online = self._read([row for item in group for row in item.rows], challenger.feature_service)
        probabilities = challenger.score(online)
        start = 0
        for item in group:
            item.columns[PROBABILITY_COLUMN] = [float(p) for p in probabilities[start : start + item.n]]
            item.columns[VERSION_COLUMN] = [challenger.version] * item.n
            start += item.n
        self.scored += start

    def stats(self) -> dict[str, Any]:
        challenger = self.challenger
        return {
            "challenger_version": challenger.version if challenger else None,
            "scored": self.scored,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "failed": self.failed,
            "backlog": self.backlog(),
            "last_error": self.last_error,
        }
