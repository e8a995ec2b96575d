"""Online feature reads for a long-running server.

`FeatureReader.read` returns what `FeatureStore.get_online_features(service, rows,
full_feature_names=True).to_dict()` returns, value for value (tests/test_serving.py compares them on every
flight of its window), in a fraction of the time: measured on these 2 cores, the Feast call cost about
2 ms for one flight, most of it spent resolving the service against the registry and building protobuf
response objects, against a Redis round trip of well under 1 ms.

- The feature service is resolved once into a plan: for each of its feature views, the join key, the
  requested features and their output names. Plans are rebuilt from a background thread
  (`refresh_registry`), so no request reads the registry.
- A request reads each view through Feast's public `Provider.online_read` (the profile's online store:
  SQLite locally, Redis in production; the same keys, hashes and value encoding `materialize()` wrote),
  once per distinct entity, and converts each value with Feast's own `feast_value_type_to_python_type`.
- Reading no registry on the request path also means that the daily materialization (the Dagster asset
  features/online_store, in another process) cannot fail a request: it commits views as MATERIALIZING
  and rewrites the registry file in place while it runs, and `get_online_features` refuses such views.
  The store keeps serving the last values written.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from mlops_assets.resources.feature_store import FULL_FEATURE_NAMES, FeastResource

log = logging.getLogger("mlops.serving")

SCHEDULE_VIEW = "flight_schedule"
RETRY_PAUSES_S = (0.02, 0.05, 0.1, None)  # pauses between attempts to resolve a service (None: give up)


def serving_store(feast: FeastResource):
    """A `feast.FeatureStore` of the resource's profile whose registry cache never expires on its own
    (0: no TTL): the background refresh re-reads it instead, so resolving a service never waits on a
    registry re-read."""
    import datetime as dt

    from feast import FeatureStore

    config = feast.repo_config()
    config.registry.cache_ttl_seconds = 0
    store = FeatureStore(config=config)
    with feast.registry_endpoint():  # an S3 registry at MLOPS_S3_ENDPOINT_URL (MinIO, moto), not AWS's
        store.registry.cached_registry_proto_ttl = dt.timedelta(0)
    return store


@dataclass(frozen=True)
class ViewRead:
    """One feature view of a service, as a request reads it."""

    view: Any  # feast.FeatureView, with the service's projection applied
    join_key: str
    features: tuple[str, ...]
    columns: tuple[str, ...]  # output names: `<view>__<feature>` (FULL_FEATURE_NAMES)
    hash_fields: tuple[bytes, ...] = ()  # Redis only: the hash field of each feature

    @property
    def missing(self) -> tuple[None, ...]:
        return (None,) * len(self.features)


def plan_service(store, name: str, redis: bool) -> tuple[ViewRead, ...]:
    """The views of feature service `name`, resolved against the store's registry."""
    service = store.get_feature_service(name)
    plan = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name).with_projection(projection)
        if len(view.join_keys) != 1:
            raise ValueError(f"feature view {view.name}: the reader supports one join key per view")
        prefix = projection.name_to_use()
        features = tuple(feature.name for feature in projection.features)
        columns = tuple(f"{prefix}__{f}" if FULL_FEATURE_NAMES else f for f in features)
        fields = redis_hash_fields(view, features, store.config) if redis else ()
        plan.append(ViewRead(view, view.join_keys[0], features, columns, fields))
    return tuple(plan)


def redis_hash_fields(view, features: tuple[str, ...], config) -> tuple[bytes, ...]:
    """The fields of the Redis hash in which `materialize()` stored each feature of the view (Feast's
    RedisOnlineStore.online_read computes the same ones on every call)."""
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.redis import _versioned_fv_name

    name = _versioned_fv_name(view, config)
    return tuple(_mmh3(f"{name}:{feature}") for feature in features)


def entity_keys(join_key: str, values: Sequence[str]) -> list:
    """Feast's EntityKey protos of string join-key values (every entity of this repo is a STRING)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return [EntityKey(join_keys=[join_key], entity_values=[Value(string_val=v)]) for v in values]


Values = list[tuple[Any, ...]]  # per distinct entity, the Python value of each feature (None: absent)
KEY_CACHE_SIZE = 200_000  # Redis keys remembered (a day has about 1,000 flights and 300 other entities)
SCALAR_KINDS = frozenset({"double_val", "float_val", "int64_val", "int32_val", "string_val", "bool_val"})


DECODED_CACHE_SIZE = 100_000  # distinct serialized scalars remembered (a day's values repeat a lot)


def value_decoder() -> Callable[[bytes | None], Any]:
    """A feature value as Redis holds it (a serialized Feast Value) -> Python, as Feast's
    `feast_value_type_to_python_type` gives it; scalars without that function's chain of type checks.

    Scalars are remembered by their bytes: the same bytes are the same value (immutable: a float, an
    int, a string), and most values of a request (the carrier's, the airports', the hour's weather)
    are ones an earlier request read."""
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    parse = Value.FromString
    known: dict[bytes, Any] = {}

    def python_value(raw: bytes | None) -> Any:
        if not raw:
            return None
        found = known.get(raw, known)
        if found is not known:
            return found
        value = parse(raw)
        kind = value.WhichOneof("val")
        if kind not in SCALAR_KINDS:
            return feast_value_type_to_python_type(value)
        if len(known) >= DECODED_CACHE_SIZE:
            known.clear()
        found = known[raw] = getattr(value, kind)
        return found

    return python_value


class FeatureReader:
    """The online feature columns of a feature service for entity rows; safe from many threads."""

    def __init__(self, feast: FeastResource) -> None:
        from feast.infra.online_stores.redis import RedisOnlineStore
        from feast.infra.provider import get_provider

        self._store = serving_store(feast)
        self._config = self._store.config
        self._provider = get_provider(self._config)
        self.store_type = str(self._config.online_store.type)
        self._redis = isinstance(self._provider.online_store, RedisOnlineStore)
        if self._redis:  # Feast's own read of many HMGETs, or the same over connections kept per thread
            store = self._provider.online_store
            held = held_connections(store, self._config)
            self._hmget = held.hmget if held else partial(store._read_hash_fields, self._config)
        self._plans: dict[str, tuple[ViewRead, ...]] = {}
        self._key_cache: dict[tuple[str, str], bytes] = {}
        self._decode = value_decoder()
        # Feast's SQLite store shares one connection between threads; Redis has a connection pool.
        self._lock = threading.Lock() if self.store_type == "sqlite" else contextlib.nullcontext()
        self._planned_version: str | None = None  # the registry's version_id every plan was resolved on
        self.retries = 0  # resolutions that had to try again (a registry caught mid-write); /health shows it

    def plan(self, service: str) -> tuple[ViewRead, ...]:
        """The service's plan, resolved on first use. Feast rewrites a file registry in place (every state
        change of a materialization, every `feast apply`), so a resolution can catch it half-written and
        find no views at all; it re-reads the registry and tries again a few times (at most ~0.2 s)."""
        plan = self._plans.get(service)
        if plan is not None:
            return plan
        for pause in RETRY_PAUSES_S:
            try:
                plan = self._plans[service] = plan_service(self._store, service, self._redis)
                return plan
            except Exception:
                if pause is None:
                    raise
                self.retries += 1
                time.sleep(pause)
                with contextlib.suppress(Exception):  # still half-written: the next attempt will tell
                    self._store.refresh_registry()
        raise AssertionError("unreachable")

    def read(self, entity_rows: Sequence[dict[str, Any]], service: str) -> dict[str, list]:
        """Columns `<view>__<feature>` and the entity rows' own keys, None where the store has nothing."""
        online: dict[str, list] = {key: [row[key] for row in entity_rows] for key in entity_rows[0]}
        plan = self.plan(service)
        distinct = [list(dict.fromkeys(online[part.join_key])) for part in plan]  # one read per entity
        with self._lock:
            found = self._fetch_redis(plan, distinct) if self._redis else self._fetch(plan, distinct)
        for part, keys, values in zip(plan, distinct, found, strict=True):
            by_key = dict(zip(keys, values, strict=True))
            rows = [by_key[key] for key in online[part.join_key]]
            online.update(zip(part.columns, map(list, zip(*rows, strict=True)), strict=True))  # transposed
        return online

    def _fetch(self, plan: tuple[ViewRead, ...], distinct: list[list[str]]) -> list[Values]:
        """Any online store: Feast's public `Provider.online_read`, one call per view."""
        from feast.type_map import feast_value_type_to_python_type as to_python

        found = []
        for part, keys in zip(plan, distinct, strict=True):
            rows = self._provider.online_read(
                self._config, part.view, entity_keys(part.join_key, keys), list(part.features)
            )
            found.append(
                [
                    part.missing
                    if data is None
                    else tuple(to_python(data[f]) if f in data else None for f in part.features)
                    for _, data in rows
                ]
            )
        return found

    def _fetch_redis(self, plan: tuple[ViewRead, ...], distinct: list[list[str]]) -> list[Values]:
        """Redis: every view's HMGETs in one pipeline, one round trip (per view, as `online_read` does it,
        they cost one round trip each: most of a request's time). Keys, fields and values are Feast's."""
        commands = []
        for part, keys in zip(plan, distinct, strict=True):
            fields = list(part.hash_fields)
            commands.extend((key, fields) for key in self._redis_keys(part.join_key, keys))
        replies = iter(self._hmget(commands))
        decode = self._decode
        return [[tuple(map(decode, next(replies))) for _ in keys] for keys in distinct]

    def _redis_keys(self, join_key: str, values: list[str]) -> list[bytes]:
        """Feast's Redis key of each entity (its serialized EntityKey and the project), remembered: a
        request's carrier, airports and route are nearly always ones an earlier request had."""
        cache = self._key_cache
        missing = [v for v in values if (join_key, v) not in cache]
        if missing:
            if len(cache) > KEY_CACHE_SIZE:
                cache.clear()
            made = self._provider.online_store._generate_redis_keys_for_entities(
                self._config, entity_keys(join_key, missing)
            )
            cache.update(zip(((join_key, v) for v in missing), made, strict=True))
        return [cache[(join_key, v)] for v in values]

    def refresh_registry(self) -> None:
        """Re-read the registry and re-resolve the services in use (off the request path); a service that
        cannot be resolved now keeps its current plan.

        Resolving holds the GIL for about 30 ms (protobuf conversions), so it is skipped while the
        registry is the version every plan was resolved against: file, S3 and GCS registries stamp each
        write with a new `version_id`. A registry without one is resolved again every time."""
        self._store.refresh_registry()
        version = registry_version(self._store)
        if version is not None and version == self._planned_version:
            return
        resolved = True
        for service in list(self._plans):
            try:
                self._plans[service] = plan_service(self._store, service, self._redis)
            except Exception as error:
                resolved = False
                log.warning(f"feature service {service}: keeping the current plan ({error})")
        self._planned_version = version if resolved else None


def registry_version(store) -> str | None:
    """The `version_id` of the registry the store holds now (a new one on every write), if it has one."""
    proto = getattr(store.registry, "cached_registry_proto", None)
    return getattr(proto, "version_id", None) or None


def held_connections(store, config) -> HeldConnections | None:
    """HeldConnections over the Redis client of Feast's store, where it has a single server's connection
    pool (a plain or Sentinel-managed Redis); None for what Feast reads its own way (cluster, GLIDE)."""
    from feast.infra.online_stores.redis import RedisClient
    from redis import Redis

    if getattr(config.online_store, "client", None) == RedisClient.glide:
        return None
    client = store._get_client(config.online_store)
    return HeldConnections(client.connection_pool) if type(client) is Redis else None


class HeldConnections:
    """HMGETs in one round trip over a connection each thread keeps, as a redis-py pipeline sends them.

    A pipeline takes a connection from the pool and gives it back on every call, and taking one polls
    its socket (a system call): that bookkeeping cost more CPU than sending and reading the commands.
    Here a thread takes a connection once and keeps it. Any error drops the connection's state (a reply
    left unread must not answer the next request). A connection the server closed while it was idle
    (what the pool's poll detects) is replaced at once; failures beyond that are retried by the
    connection's own retry policy, as the pipeline does."""

    def __init__(self, pool) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        self._pool = pool
        self._local = threading.local()
        self._disconnected = RedisConnectionError

    def hmget(self, commands: list[tuple[bytes, list[bytes]]]) -> list[list[bytes | None]]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._pool.get_connection()
        try:
            return self._exchange(connection, commands)
        except self._disconnected:  # dropped by _exchange: the next send connects afresh
            return connection.retry.call_with_retry(
                lambda: self._exchange(connection, commands), lambda _: connection.disconnect()
            )

    @staticmethod
    def _exchange(connection, commands: list[tuple[bytes, list[bytes]]]) -> list[list[bytes | None]]:
        try:
            packed = connection.pack_commands([("HMGET", key, *fields) for key, fields in commands])
            connection.send_packed_command(packed, check_health=False)
            return [connection.read_response() for _ in commands]
        except BaseException:
            connection.disconnect()
            raise


def unscheduled(online: dict[str, list], rows: int) -> list[int]:
    """Positions of flights the online store has no schedule row for: not a scheduled flight (or not
    materialized). Every flight_schedule column is None for them."""
    prefix = f"{SCHEDULE_VIEW}__"
    columns = [values for name, values in online.items() if name.startswith(prefix)]
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
        from scipy.special import ndtri

        from mlops_assets.ml.preprocessing import EDGE, spell_category

        self._ndtri, self._spell = ndtri, spell_category
        self.categorical = tuple(prep.categorical)
        self.numeric = tuple(prep.numeric)
        self._index = [{v: i + 1 for i, v in enumerate(prep.vocabulary[c])} for c in self.categorical]
        self._median = np.array([prep.median[c] for c in self.numeric], dtype="float64")[:, None]
        grids = [np.asarray(prep.quantiles[c], dtype="float64") for c in self.numeric]
        ranks = [np.linspace(0, 1, len(q)) for q in grids]
        # np.interp's two passes of _normal_scores (rising, and mirrored for ties), arrays ready
        self._rising = list(zip(grids, ranks, strict=True))
        self._mirrored = [(-q[::-1], -r[::-1]) for q, r in self._rising]
        # The same grids stacked, for few rows at once (interp_rows); every column has as many quantiles.
        self._stacked = None
        if grids and len({len(q) for q in grids}) == 1:
            grid = np.stack(grids)
            self._stacked = (grid, ranks[0], -grid[:, ::-1], -ranks[0][::-1])
        self._edge = EDGE
        position = {c: j for j, c in enumerate(self.numeric)}
        self._indicators = [position[c] for c in prep.indicators]
        # per numeric column, value -> its normal score, for requests of few rows (see _remembered)
        self._known: list[dict[Any, float]] = [{} for _ in self.numeric]

    def transform(self, online: dict[str, list]) -> tuple[np.ndarray, np.ndarray]:
        spell = self._spell
        rows = len(online[self.categorical[0]])
        codes = np.zeros((rows, len(self.categorical)), dtype=np.int64)
        for j, column in enumerate(self.categorical):
            index = self._index[j]
            codes[:, j] = [index.get(spell(v), 0) if v is not None and v == v else 0 for v in online[column]]
        columns = [online[c] for c in self.numeric]
        if rows > FEW_ROWS:  # a batch: the arrays' arithmetic beats a lookup per value
            scores = self.normal_scores(columns, rows)
        elif (scores := self._remembered(columns, rows)) is None:
            scores = self.normal_scores(columns, rows)
            self._remember(columns, scores)
        numbers = np.empty((rows, len(self.numeric) + len(self._indicators)), dtype=np.float32)
        numbers[:, : len(self.numeric)] = scores.T
        numbers[:, len(self.numeric) :] = self._missing(columns, rows)
        return codes, numbers

    def _missing(self, columns: list[list], rows: int) -> np.ndarray | list[list[bool]]:
        """The missing-indicators (rows x indicators): None or NaN, as np.isnan sees them."""
        indicated = [columns[j] for j in self._indicators]
        if rows > FEW_ROWS:
            return np.isnan(np.array(indicated, dtype="float64").reshape(len(indicated), rows)).T
        return [[v is None or v != v for v in values] for values in zip(*indicated, strict=True)]

    def normal_scores(self, columns: list[list], rows: int) -> np.ndarray:
        """float64 normal scores (columns x rows) of numeric columns, missing values taken as the median."""
        raw = np.array(columns, dtype="float64").reshape(len(self.numeric), rows)
        values = np.where(np.isnan(raw), self._median, raw)
        if self._stacked is not None and rows <= FEW_ROWS:
            grid, ranks, mirrored_grid, mirrored_ranks = self._stacked
            rank = 0.5 * (
                interp_rows(values, grid, ranks) - interp_rows(-values, mirrored_grid, mirrored_ranks)
            )
        else:
            rank = np.empty_like(values)
            for j, ((q, r), (mq, mr)) in enumerate(zip(self._rising, self._mirrored, strict=True)):
                rank[j] = 0.5 * (np.interp(values[j], q, r) - np.interp(-values[j], mq, mr))
        return self._ndtri(np.clip(rank, self._edge, 1 - self._edge))

    def _remembered(self, columns: list[list], rows: int) -> np.ndarray | None:
        """The scores of values seen before, or None if any is new (or NaN, never equal to itself).

        A value's score depends on nothing but the value and its column's quantiles (every step above
        is elementwise), so a remembered score is the very float the arithmetic gives."""
        found = []
        for known, values in zip(self._known, columns, strict=True):
            for value in values:
                score = known.get(value)
                if score is None:
                    return None
                found.append(score)
        return np.array(found, dtype="float64").reshape(len(columns), rows)

    def _remember(self, columns: list[list], scores: np.ndarray) -> None:
        for known, values, column_scores in zip(self._known, columns, scores.tolist(), strict=True):
            if len(known) > SCORES_CACHE_SIZE:
                known.clear()
            known.update(zip(values, column_scores, strict=True))


SCORES_CACHE_SIZE = 50_000  # values remembered per numeric column (then forgotten all at once)
FEW_ROWS = 16  # up to this many rows, interp_rows (one pass over all columns) beats a np.interp per column


def interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """`np.interp(x[c], xp[c], fp)` for every row c at once (x: columns x rows, xp: columns x grid).

    For one flight, 2 x 54 calls of np.interp cost more than the model; this is one pass of array
    operations instead. It repeats numpy's own arithmetic step by step (arr_interp in numpy's
    compiled_base.c), so the results are the same bits: j is the last grid point <= x; below the grid
    fp[0], at or past its end fp[-1], on a grid point fp[j], else slope * (x - xp[j]) + fp[j], with
    numpy's fallbacks for a NaN. tests/test_serving.py checks it against np.interp on every online row."""
    size = xp.shape[1]
    j = (xp[:, None, :] <= x[:, :, None]).sum(axis=2) - 1
    inner = np.clip(j, 0, size - 2)
    left_x, right_x = np.take_along_axis(xp, inner, axis=1), np.take_along_axis(xp, inner + 1, axis=1)
    left_y, right_y = fp[inner], fp[inner + 1]
    with np.errstate(divide="ignore", invalid="ignore"):  # only where j is off the grid, overwritten below
        slope = (right_y - left_y) / (right_x - left_x)
        out = slope * (x - left_x) + left_y
        again = np.isnan(out)
        if again.any():
            out = np.where(again, slope * (x - right_x) + right_y, out)
            out = np.where(np.isnan(out) & (left_y == right_y), left_y, out)
    out = np.where(x == left_x, left_y, out)
    out = np.where(j < 0, fp[0], out)
    out = np.where(j >= size - 1, fp[size - 1], out)
    return np.where(np.isnan(x), x, out)
