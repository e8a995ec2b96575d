"""Online feature reads for a long-running server.

The store is the profile's (`FeastResource.repo_config()`: SQLite locally, Redis in production) with two
registry settings a server needs and a batch job does not:

- `serve_features_while_materializing`: Feast 0.67 commits a feature view's state as MATERIALIZING to
  the registry while `materialize()` runs (in the Dagster asset features/online_store, another process),
  and a server that sees that state refuses to read the view. With this flag it keeps serving the
  last materialized values, so the daily materialization never fails a request.
- no cache expiry on the request path: a file registry is re-read at once when its file changes
  (Feast checks the modification time), and `refresh_registry()` is called from a background thread,
  so no request pays for re-reading the registry when a cache TTL runs out.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlops_assets.defs.features.feast_store import FULL_FEATURE_NAMES, FeastResource

SCHEDULE_VIEW = "flight_schedule"
RETRY_PAUSES_S = (0.02, 0.05, 0.1, None)  # pauses between attempts of an online read (None: give up)


def serving_store(feast: FeastResource):
    """A `feast.FeatureStore` of the resource's profile, configured for serving (see above)."""
    import datetime as dt

    from feast import FeatureStore

    config = feast.repo_config()
    config.registry.serve_features_while_materializing = True
    config.registry.cache_ttl_seconds = 0  # 0: never expires (refreshed in the background instead)
    store = FeatureStore(config=config)
    store.registry.cached_registry_proto_ttl = dt.timedelta(0)
    return store


class FeatureReader:
    """`get_online_features` of a feature service, safe to call from many request threads."""

    def __init__(self, feast: FeastResource) -> None:
        self._store = serving_store(feast)
        self.store_type = str(self._store.config.online_store.type)
        self._services: dict[str, Any] = {}
        # Feast's SQLite store shares one connection between threads; Redis has a connection pool.
        self._lock = threading.Lock() if self.store_type == "sqlite" else contextlib.nullcontext()
        self.retries = 0  # reads that had to try again (a registry caught mid-write); /health shows it

    def service(self, name: str):
        """The FeatureService object, looked up once (the registry walk costs more than a Redis read)."""
        service = self._services.get(name)
        if service is None:
            service = self._services[name] = self._store.get_feature_service(name)
        return service

    def read(self, entity_rows: Sequence[dict[str, Any]], service: str) -> dict[str, list]:
        """Columns `<view>__<feature>` (and the join keys) for the entity rows, None where missing.

        Feast rewrites a file registry in place (every state change of a materialization, every
        `feast apply`), so a read can catch it half-written and find no views at all (seen here: "Feature
        view weather_hourly does not exist"). Such a read re-reads the registry and tries again a few
        times (at most ~0.2 s) before the error reaches the request (as a 503)."""
        for pause in RETRY_PAUSES_S:
            try:
                with self._lock:
                    response = self._store.get_online_features(
                        features=self.service(service),
                        entity_rows=list(entity_rows),
                        full_feature_names=FULL_FEATURE_NAMES,
                    )
                return response.to_dict()
            except Exception:
                if pause is None:
                    raise
                self.retries += 1
                time.sleep(pause)
                with contextlib.suppress(Exception):  # still half-written: the next attempt will tell
                    self.refresh_registry()
        raise AssertionError("unreachable")

    def refresh_registry(self) -> None:
        self._store.refresh_registry()
        self._services.clear()


def unscheduled(online: dict[str, list], rows: int) -> list[int]:
    """Positions of flights the online store has no schedule row for: not a scheduled flight (or not
    materialized). Every flight_schedule column is None for them."""
    columns = [values for name, values in online.items() if name.startswith(f"{SCHEDULE_VIEW}__")]
    if not columns:
        raise KeyError(f"the feature service has no {SCHEDULE_VIEW} view")
    return [i for i in range(rows) if all(column[i] is None for column in columns)]


class ModelInputs:
    """Online feature columns -> the (codes, numbers) arrays the model's Preprocessor would produce.

    Training gives a model `Preprocessor.transform(model_input_frame(frame, categorical, numeric))`. That
    path builds a pandas frame column by column: about 25 ms for one flight on these 2 cores, several
    times the whole latency budget. This is the same arithmetic in numpy, on the columns Feast returns,
    with every per-column constant prepared once per model: categories spelled by `spell_category` and
    looked up in the vocabulary (0 = unseen or missing), numbers as float64 (None -> NaN), missing ->
    the training median, training quantiles -> normal scores, missing-indicators. tests/test_serving.py
    proves the arrays bit-for-bit equal to the training path on every online row of its window."""

    def __init__(self, prep) -> None:
        from mlops_assets.ml.preprocessing import EDGE

        self.categorical = tuple(prep.categorical)
        self.numeric = tuple(prep.numeric)
        self._index = [{v: i + 1 for i, v in enumerate(prep.vocabulary[c])} for c in self.categorical]
        self._median = np.array([prep.median[c] for c in self.numeric], dtype="float64")[:, None]
        grids = [np.asarray(prep.quantiles[c], dtype="float64") for c in self.numeric]
        ranks = [np.linspace(0, 1, len(q)) for q in grids]
        # np.interp's two passes of _normal_scores (rising, and mirrored for ties), arrays ready
        self._rising = list(zip(grids, ranks, strict=True))
        self._mirrored = [(-q[::-1], -r[::-1]) for q, r in self._rising]
        self._edge = EDGE
        position = {c: j for j, c in enumerate(self.numeric)}
        self._indicators = np.array([position[c] for c in prep.indicators], dtype="int64")

    def transform(self, online: dict[str, list]) -> tuple[np.ndarray, np.ndarray]:
        from scipy.special import ndtri

        from mlops_assets.ml.preprocessing import spell_category

        rows = len(online[self.categorical[0]])
        codes = np.zeros((rows, len(self.categorical)), dtype=np.int64)
        for j, column in enumerate(self.categorical):
            index = self._index[j]
            codes[:, j] = [
                index.get(spell_category(v), 0) if v is not None and v == v else 0 for v in online[column]
            ]
        raw = np.array([online[c] for c in self.numeric], dtype="float64").reshape(len(self.numeric), rows)
        missing = np.isnan(raw)
        values = np.where(missing, self._median, raw)
        rank = np.empty_like(values)
        for j, ((q, r), (mq, mr)) in enumerate(zip(self._rising, self._mirrored, strict=True)):
            rank[j] = 0.5 * (np.interp(values[j], q, r) - np.interp(-values[j], mq, mr))
        numbers = np.empty((rows, len(self.numeric) + len(self._indicators)), dtype=np.float32)
        numbers[:, : len(self.numeric)] = ndtri(np.clip(rank, self._edge, 1 - self._edge)).T
        numbers[:, len(self.numeric) :] = missing[self._indicators].T
        return codes, numbers
