"""A Feast offline store that answers point-in-time joins with DuckDB's ASOF JOIN over the feature files.

Feast keeps its API (`FeatureStore.get_historical_features`, `materialize`) and its semantics; only the
engine under them changes. Selected in `feature_store.yaml` as a custom offline store:

    offline_store:
      type: mlops_assets.features.offline_store.DuckDBAsofOfflineStore

The sources stay Feast `FileSource`s over Parquet folders, local or `s3://` (read through s3fs at the
source's `s3_endpoint_override`), so `feast plan`, `feast apply` and the registry see the same objects as
with the `file` store. What it computes, per feature view, is what Feast's `file` (Dask) store computes:

- the latest source row whose event timestamp is at or before the entity row's, and not older than the
  view's TTL (rows older than that give nulls, as a missing row does);
- among source rows with the same join keys and event timestamp, the one with the newest created
  timestamp (the source's `created_timestamp_column`), then the one read last;
- `materialize` takes the latest row per entity with its event timestamp in [start, end].

Unlike the Dask store it never drops an entity row whose only candidates are older than the TTL (that row
gets nulls for the view), and it keeps duplicate entity rows instead of collapsing them. It reads only the
day files (`<YYYY-MM-DD>.parquet`) that the entity rows' time span, minus the TTL, can reach.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import OfflineStore, RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL as EVENT_TS
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import FeastConfigBaseModel, RepoConfig

from mlops_assets.features.day_files import in_window

STORE_TYPE = "mlops_assets.features.offline_store.DuckDBAsofOfflineStore"
ROW = "__entity_row"
TS = "__feature_ts"
FILE = "__source_file"
# A day file holds the rows stamped on its (UTC) day, give or take the hours between a New York day and
# its UTC span: one day of margin on either side of a window.
FILE_MARGIN = dt.timedelta(days=1)


class DuckDBAsofOfflineStoreConfig(FeastConfigBaseModel):
    """Offline store config: DuckDB ASOF joins over FileSource Parquet folders."""

    type: Literal["mlops_assets.features.offline_store.DuckDBAsofOfflineStore"] = STORE_TYPE
    threads: int | None = None
    """DuckDB worker threads (None: one per core)."""


class ArrowRetrievalJob(RetrievalJob):
    """A lazily computed Arrow table."""

    def __init__(
        self,
        compute: Callable[[], pa.Table],
        full_feature_names: bool,
        on_demand_feature_views: list[OnDemandFeatureView] | None = None,
        metadata: RetrievalMetadata | None = None,
    ):
        self._compute = compute
        self._full_feature_names = full_feature_names
        self._on_demand_feature_views = on_demand_feature_views or []
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata | None:
        return self._metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._compute()

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._compute().to_pandas()


class DuckDBAsofOfflineStore(OfflineStore):
    """Point-in-time joins and materialization reads over FileSources, computed by DuckDB."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        if not isinstance(entity_df, pd.DataFrame):
            raise ValueError(
                f"{STORE_TYPE} joins a pandas entity_df (join keys and {EVENT_TS}), "
                f"not {type(entity_df).__name__}"
            )
        if EVENT_TS not in entity_df.columns:
            raise ValueError(f"entity_df needs a column named {EVENT_TS}")
        for view in feature_views:
            _require_file_source(view.batch_source)
        odfvs = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        by_view = _features_by_view(feature_refs, feature_views)
        entities = entity_df.copy()
        entities[EVENT_TS] = pd.to_datetime(entities[EVENT_TS], utc=True)
        stamps = entities[EVENT_TS]
        span = (stamps.min(), stamps.max()) if len(stamps) else (None, None)

        def compute() -> pa.Table:
            return _point_in_time_join(config, entities, by_view, full_feature_names)

        return ArrowRetrievalJob(
            compute,
            full_feature_names,
            odfvs,
            RetrievalMetadata(
                features=feature_refs,
                keys=[c for c in entity_df.columns if c != EVENT_TS],
                min_event_timestamp=span[0],
                max_event_timestamp=span[1],
            ),
        )

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: dt.datetime,
        end_date: dt.datetime,
    ) -> RetrievalJob:
        columns = (join_key_columns, feature_name_columns, timestamp_field, created_timestamp_column)
        return _pull(config, data_source, columns, start_date, end_date, latest=True)

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: dt.datetime | None = None,
        end_date: dt.datetime | None = None,
    ) -> RetrievalJob:
        columns = (join_key_columns, feature_name_columns, timestamp_field, created_timestamp_column)
        return _pull(config, data_source, columns, start_date, end_date, latest=False)


def _pull(
    config: RepoConfig,
    data_source: DataSource,
    columns: tuple[list[str], list[str], str, str | None],
    start_date: dt.datetime | None,
    end_date: dt.datetime | None,
    latest: bool,
) -> RetrievalJob:
    """The source's rows stamped in [start, end] (either bound may be open): all of them in time order,
    or (`latest`) the newest row per entity, as materialization reads them."""
    source = _require_file_source(data_source)
    join_keys, features, timestamp, created = columns
    selected = [*join_keys, *features, timestamp, *([created] if created else [])]

    def compute() -> pa.Table:
        start, end = _utc(start_date), _utc(end_date)
        with _connect(config) as connection:
            table = _load_source(connection, config, source, start, end)
            if table is None:
                return _empty(selected)
            bounds = [
                f"{_q(timestamp)} >= $start" if start else "",
                f"{_q(timestamp)} <= $end" if end else "",
            ]
            where = " AND ".join(b for b in bounds if b) or "TRUE"
            order = f"ORDER BY {_q(timestamp)}"
            if latest:
                order = (
                    f"QUALIFY row_number() OVER (PARTITION BY {_list(join_keys) or '1'} "
                    f"ORDER BY {_q(timestamp)} DESC, {_newest_first(created)}) = 1"
                )
            parameters = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
            query = f"SELECT {_list(selected)} FROM {table} WHERE {where} {order}"
            return connection.sql(query, params=parameters or None).to_arrow_table()

    return ArrowRetrievalJob(compute, full_feature_names=False)


def _features_by_view(
    feature_refs: list[str], views: list[FeatureView]
) -> list[tuple[FeatureView, list[str]]]:
    """(view, its requested features) for each view named by a `view:feature` reference, in reference
    order; references to on-demand views are left to the job's on-demand transformation."""
    by_name = {view.projection.name_to_use(): view for view in views}
    features: dict[str, list[str]] = {}
    for ref in feature_refs:
        name, feature = ref.split(":", 1)
        if name in by_name:
            features.setdefault(name, []).append(feature)
    return [(by_name[name], names) for name, names in features.items()]


def _require_file_source(source: DataSource | None) -> FileSource:
    if not isinstance(source, FileSource):
        raise ValueError(f"{STORE_TYPE} reads FileSources (Parquet folders), not {type(source).__name__}")
    return source


def _utc(when: dt.datetime | pd.Timestamp | None) -> pd.Timestamp | None:
    if when is None:
        return None
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _list(names: Sequence[str]) -> str:
    return ", ".join(_q(n) for n in names)


def _newest_first(created_timestamp_column: str | None) -> str:
    """Tie-break among rows of one entity and event timestamp: newest created timestamp, then the later
    file (day files sort in time)."""
    created = f"{_q(created_timestamp_column)} DESC NULLS LAST, " if created_timestamp_column else ""
    return f"{created}{FILE} DESC"


def _empty(columns: list[str]) -> pa.Table:
    return pa.table({c: pa.array([], pa.null()) for c in columns})


@contextlib.contextmanager
def _connect(config: RepoConfig) -> Iterator[Any]:
    """A private in-memory DuckDB, in UTC, for one computation."""
    import duckdb

    threads = getattr(config.offline_store, "threads", None)
    with duckdb.connect(config={"threads": threads} if threads else {}) as connection:
        connection.sql("SET TimeZone = 'UTC'")
        yield connection


def _point_in_time_join(
    config: RepoConfig,
    entities: pd.DataFrame,
    by_view: list[tuple[FeatureView, list[str]]],
    full_feature_names: bool,
) -> pa.Table:
    """entity_df with each view's features appended, in entity_df's row order."""
    stamps = entities[EVENT_TS]
    result = pa.Table.from_pandas(entities, preserve_index=False)
    keys = sorted({_join_key(view, c) for view, _ in by_view for c in view.entity_columns})
    with _connect(config) as connection:
        rows = entities[[*keys, EVENT_TS]].assign(**{ROW: range(len(entities))})
        connection.register("entities", pa.Table.from_pandas(rows, preserve_index=False))
        for number, (view, features) in enumerate(by_view):
            prefix = view.projection.name_to_use()
            names = [f"{prefix}__{f}" if full_feature_names else f for f in features]
            table = None
            if not entities.empty:
                reach = stamps.min() - (view.ttl or dt.timedelta(0))
                table = _load_source(connection, config, view.batch_source, reach, stamps.max(), number)
            joined = _join_view(connection, len(entities), view, features, names, table)
            for name in names:
                result = result.append_column(name, joined.column(name))
    return result


def _join_key(view: FeatureView, column) -> str:
    return view.projection.join_key_map.get(column.name, column.name)


def _join_view(
    connection, rows: int, view: FeatureView, features: list[str], names: list[str], table: str | None
) -> pa.Table:
    """One view's features for every entity row (nulls where no row is in the TTL), in row order."""
    batch = view.batch_source
    if table is None:
        return pa.table({name: pa.nulls(rows, pa.float64()) for name in names})
    mapping = dict(batch.field_mapping or {})
    column = {mapping.get(c, c): c for c in _columns(connection, table)}  # feature name -> source column
    # (entity_df's column, the source's column) of each join key: a projection may rename the key.
    join_keys = [(_join_key(view, c), column.get(c.name, c.name)) for c in view.entity_columns]
    timestamp = column.get(batch.timestamp_field, batch.timestamp_field)
    created = column.get(batch.created_timestamp_column) if batch.created_timestamp_column else None
    ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else None
    fresh = f"s.{TS} >= e.{_q(EVENT_TS)} - $ttl" if ttl else "TRUE"
    selected = ", ".join(
        f"CASE WHEN {fresh} THEN s.{_q(f)} END AS {_q(n)}" for f, n in zip(features, names, strict=True)
    )
    keys_equal = "".join(f"e.{_q(key)} = s.{_q(key)} AND " for key, _ in join_keys)
    renamed = ", ".join(
        f"{_q(source)} AS {_q(key)}"
        for key, source in [*join_keys, *((f, column.get(f, f)) for f in features)]
    )
    latest = f"SELECT {renamed}, {_q(timestamp)} AS {TS} FROM {table}"
    source_keys = [source for _, source in join_keys]
    if _has_ties(connection, table, source_keys, timestamp):
        latest += (
            f" QUALIFY row_number() OVER (PARTITION BY {_list([*source_keys, timestamp])} "
            f"ORDER BY {_newest_first(created)}) = 1"
        )
    query = f"""
        SELECT {selected}
        FROM entities e ASOF LEFT JOIN ({latest}) s
          ON {keys_equal}e.{_q(EVENT_TS)} >= s.{TS}
        ORDER BY e.{ROW}
    """
    return connection.sql(query, params={"ttl": ttl} if ttl else None).to_arrow_table()


def _columns(connection, table: str) -> list[str]:
    return [row[0] for row in connection.sql(f"DESCRIBE {table}").fetchall()]


def _has_ties(connection, table: str, keys: list[str], timestamp: str) -> bool:
    """Whether two rows share join keys and event timestamp (then the tie-break must order them; a
    check costs a tenth of the ordering it saves on the feature files, which have none)."""
    group = _list([*keys, timestamp])
    query = f"SELECT EXISTS (SELECT 1 FROM {table} GROUP BY {group} HAVING count(*) > 1)"
    return bool(connection.sql(query).fetchall()[0][0])


def _load_source(
    connection,
    config: RepoConfig,
    source: FileSource,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    number: int = 0,
) -> str | None:
    """A temporary table of the source's Parquet files that can hold rows stamped in [start, end], with
    the file each row came from; its name, or None when there are none. Local files are read by DuckDB
    itself; S3 objects through s3fs and Arrow (DuckDB's S3 extension is downloaded at run time)."""
    first = (start - FILE_MARGIN).date() if start is not None else None
    last = (end + FILE_MARGIN).date() if end is not None else None
    uri = FileSource.get_uri_for_file_path(repo_path=config.repo_path, uri=source.path)
    filesystem, files = _list_files(uri, source.file_options.s3_endpoint_override, first, last)
    if not files:
        return None
    table = f"source_{number}"
    if filesystem is None:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        reader = f"read_parquet([{listed}], filename = '{FILE}', union_by_name = true)"
        connection.sql(f"CREATE TEMP TABLE {table} AS SELECT * FROM {reader}")
    else:
        connection.register(f"{table}_arrow", _read_remote(filesystem, files))
        connection.sql(f"CREATE TEMP TABLE {table} AS SELECT * FROM {table}_arrow")
        connection.unregister(f"{table}_arrow")
    return table


def _read_remote(filesystem, files: list[str]) -> pa.Table:
    import pyarrow.parquet as pq

    tables = []
    for path in files:
        table = pq.read_table(path, filesystem=filesystem)
        tables.append(table.append_column(FILE, pa.array([path] * table.num_rows, pa.string())))
    return pa.concat_tables(tables, promote_options="permissive")


def _list_files(
    uri: str, endpoint: str | None, first: dt.date | None, last: dt.date | None
) -> tuple[Any, list[str]]:
    """(filesystem, sorted Parquet paths of the source within the window); the source may be one file.
    The filesystem is None for local paths."""
    if uri.startswith("s3://"):
        import s3fs

        filesystem = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else {})
        path = uri.removeprefix("s3://").rstrip("/")
        if filesystem.isfile(path):
            return filesystem, [path]
        names = filesystem.ls(path, detail=False) if filesystem.exists(path) else []
        return filesystem, sorted(n for n in names if in_window(n.rsplit("/", 1)[-1], first, last))
    folder = Path(uri)
    if folder.is_file():
        return None, [str(folder)]
    if not folder.is_dir():
        return None, []
    return None, sorted(str(p) for p in folder.iterdir() if p.is_file() and in_window(p.name, first, last))
