"""The Feast feature store as a Dagster resource: one interface, local or production behind it.

`FeastResource` renders `feature_repo/profiles/<profile>.yaml` with resolved values (never the process
environment: the definitions pass them in), builds `feast.FeatureStore` from that config and the objects of
`feature_repo/flight_delay_repo.py` built for the profile's feature files:

| part | local | production |
| --- | --- | --- |
| offline (DuckDB ASOF) | `<home>/lake/features/<table>/` | `s3://<bucket>/lake/features/<table>/` |
| online store | SQLite `<home>/feast/online.db` | Redis `MLOPS_REDIS_URL` (default 127.0.0.1:6379) |
| registry | `<home>/feast/registry.db` | `s3://<bucket>/feast/registry.db` |

`online_store="redis"` gives the local profile a Redis online store (tests, benchmarks). `feast` is imported
inside the methods only: loading the code location stays cheap.

The offline store is a Feast custom offline store (`mlops_assets/features/offline_store.py`): Feast's
`get_historical_features` and `materialize`, computed by DuckDB over the same FileSources. On S3 it reads
the Parquet folders through s3fs (pinned with a boto3 that aiobotocore accepts, see pyproject.toml), at
`s3_endpoint_url` when one is set; the S3 registry takes the same endpoint.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import os
import string
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from mlops_assets.lib.settings import Settings, env_setting
from mlops_assets.resources.storage import S3_BUCKET_ENV, S3_ENDPOINT_ENV

REPO_DIR = Path(__file__).resolve().parents[2] / "feature_repo"
REPO_MODULE = "flight_delay_repo.py"
DEFAULT_PROJECT = "flight_delay"
DEFAULT_REDIS_URL = "127.0.0.1:6379"
REDIS_URL_ENV = "MLOPS_REDIS_URL"
# Delay views share feature names (flights_1d, ...): every read and write uses `<view>__<feature>` columns.
FULL_FEATURE_NAMES = True
# Feast's S3 registry store takes its endpoint from this variable only (feast/infra/registry/s3.py).
FEAST_S3_ENDPOINT_ENV = "FEAST_S3_ENDPOINT_URL"


def load_repo_module(repo_dir: str | Path = REPO_DIR):
    """feature_repo/flight_delay_repo.py as a module (the repository is not a package of the wheel)."""
    path = Path(repo_dir) / REPO_MODULE
    name = f"_mlops_feature_repo_{abs(hash(str(path.resolve())))}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(f"no Feast repository module at {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


class FeastResource(dg.ConfigurableResource):
    """Feast for the flight-delay features: apply, materialize, point-in-time training sets, online reads."""

    profile: str = Field(default="local", description="`local` or `production` (feature_repo/profiles/).")
    home: str = Field(description="MLOPS_HOME: the local profile keeps the lake and feast/ under it.")
    project: str = Field(default=DEFAULT_PROJECT, description="Feast project (prefix of the online keys).")
    online_store: str | None = Field(
        default=None,
        description="`sqlite` or `redis`; None: the profile's own (local sqlite, production redis).",
    )
    redis_url: str = Field(default=DEFAULT_REDIS_URL, description="Redis `host:port[,password=..,ssl=true]`.")
    s3_bucket: str | None = Field(default=None, description="Bucket of the lake and registry (production).")
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, moto).")
    repo_dir: str = Field(default=str(REPO_DIR), description="The Feast repository (feature_repo/).")
    source_root: str | None = Field(
        default=None, description="Where the feature Parquet folders are; default: the profile's lake."
    )

    _store: Any = PrivateAttr(default=None)
    _objects: Any = PrivateAttr(default=None)

    # ---- configuration -------------------------------------------------------------------------------
    def feature_source_root(self) -> str:
        if self.source_root:
            return self.source_root
        if self.profile == "production":
            return f"s3://{self._bucket()}/lake/features"
        return str(Path(self.home) / "lake" / "features")

    def _bucket(self) -> str:
        if not self.s3_bucket:
            raise ValueError("the production profile needs MLOPS_S3_BUCKET (FeastResource.s3_bucket)")
        return self.s3_bucket

    def rendered_config(self) -> dict[str, Any]:
        """The profile YAML with ${VARS} replaced by this resource's resolved values."""
        import yaml

        if self.profile not in ("local", "production"):
            raise ValueError(f"unknown profile {self.profile!r}")
        text = (Path(self.repo_dir) / "profiles" / f"{self.profile}.yaml").read_text()
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        values = {
            "MLOPS_HOME": str(Path(self.home)),
            "MLOPS_REDIS_URL": self.redis_url,
            "MLOPS_S3_BUCKET": self._bucket() if self.profile == "production" else "",
        }
        config = yaml.safe_load(string.Template(text).substitute(values))
        # The YAML names the project literally, so that the `feast` CLI needs no variable for it.
        config["project"] = self.project
        if self.online_store == "redis":
            config["online_store"] = {"type": "redis", "connection_string": self.redis_url}
        elif self.online_store == "sqlite":
            config["online_store"] = {"type": "sqlite", "path": str(Path(self.home) / "feast" / "online.db")}
        elif self.online_store is not None:
            raise ValueError(f"online_store must be sqlite or redis, not {self.online_store!r}")
        return config

    def repo_config(self):
        from feast import RepoConfig

        config = self.rendered_config()
        for section in ("registry", "online_store"):
            path = config.get(section, {}).get("path", "")
            if path and "://" not in path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        repo_config = RepoConfig(**config)
        repo_config.repo_path = Path(self.repo_dir)
        return repo_config

    # ---- objects -------------------------------------------------------------------------------------
    def repo_objects(self):
        """Entities, sources, views and services of feature_repo/, over this profile's feature files."""
        if self._objects is None:
            module = load_repo_module(self.repo_dir)
            endpoint = self.s3_endpoint_url if self.profile == "production" else None
            self._objects = module.build_repo(self.feature_source_root(), endpoint)
        return self._objects

    def get_store(self):
        """The `feast.FeatureStore` of this profile (built once per resource instance)."""
        if self._store is None:
            from feast import FeatureStore

            store = FeatureStore(config=self.repo_config())
            with self.registry_endpoint():
                _ = store.registry  # created now, while the endpoint is set; it keeps its S3 client
            self._store = store
        return self._store

    @contextlib.contextmanager
    def registry_endpoint(self) -> Iterator[None]:
        """FEAST_S3_ENDPOINT_URL set to `s3_endpoint_url` while the registry is created (and only then),
        unless the environment already names one: the S3 registry reads nothing else."""
        if self.profile != "production" or not self.s3_endpoint_url or os.environ.get(FEAST_S3_ENDPOINT_ENV):
            yield
            return
        os.environ[FEAST_S3_ENDPOINT_ENV] = self.s3_endpoint_url
        try:
            yield
        finally:
            os.environ.pop(FEAST_S3_ENDPOINT_ENV, None)

    # ---- operations ----------------------------------------------------------------------------------
    def apply(self) -> dict[str, Any]:
        """`feast apply`: register (and update the online tables of) every object of the repository."""
        objects = self.repo_objects()
        store = self.get_store()
        store.apply(objects.all())
        return {
            "entities": sorted(e.name for e in objects.entities),
            "feature_views": sorted(v.name for v in objects.feature_views),
            "feature_services": sorted(s.name for s in objects.feature_services),
            "features": objects.feature_refs(),
        }

    def materialize(
        self, start: dt.datetime, end: dt.datetime, feature_views: list[str] | None = None
    ) -> dict[str, Any]:
        """Latest row per entity with event_timestamp in [start, end] into the online store."""
        started = time.perf_counter()
        self.get_store().materialize(start_date=start, end_date=end, feature_views=feature_views)
        return {"seconds": time.perf_counter() - started}

    def materialize_as_of(self, when: dt.datetime) -> None:
        """The online store as a point-in-time read at `when` sees it: each view over [when - ttl, when]."""
        for view in self.repo_objects().feature_views:
            self.get_store().materialize(start_date=when - view.ttl, end_date=when, feature_views=[view.name])

    def feature_service(self, name: str):
        return self.get_store().get_feature_service(name)

    def historical_features(self, entity_df, feature_service: str):
        """Point-in-time join of `entity_df` (join keys + event_timestamp) with the service's features:
        Feast's `get_historical_features`, answered by the profile's offline store (DuckDB ASOF joins over
        the feature files, `mlops_assets/features/offline_store.py`), one row per entity row, in order."""
        import pandas as pd

        store = self.get_store()
        frame = entity_df.reset_index(drop=True).copy()
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        job = store.get_historical_features(
            entity_df=frame,
            features=store.get_feature_service(feature_service),
            full_feature_names=FULL_FEATURE_NAMES,
        )
        return job.to_df()

    def online_features(self, entity_rows: list[dict[str, Any]], feature_service: str) -> dict[str, list]:
        store = self.get_store()
        response = store.get_online_features(
            features=store.get_feature_service(feature_service),
            entity_rows=entity_rows,
            full_feature_names=FULL_FEATURE_NAMES,
        )
        return response.to_dict()


def feast_resource(settings: Settings, **overrides) -> FeastResource:
    """The FeastResource of a profile (EnvVar for the production settings, read when a run starts: the Redis
    URL may carry a password)."""
    if settings.profile == "production":
        return FeastResource(
            profile="production",
            home=str(settings.home),
            redis_url=env_setting(REDIS_URL_ENV, DEFAULT_REDIS_URL),
            s3_bucket=dg.EnvVar(S3_BUCKET_ENV),
            s3_endpoint_url=env_setting(S3_ENDPOINT_ENV),
            **overrides,
        )
    return FeastResource(profile="local", home=str(settings.home), **overrides)
