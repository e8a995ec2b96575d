"""The Spark session as a resource: an embedded local session or a Spark Connect server, one interface.

`SparkResource(master="local[2]")` starts an embedded JVM in the step's process (about 11 s on
2 cores); `SparkResource(remote="sc://host:15002")` connects to a long-lived Spark Connect server
(no JVM in the step, no start cost). The feature code uses only the DataFrame API, which both
support. pyspark is imported when the session is first asked for, never at import time.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from mlops_assets.lib.settings import Settings, env_setting

# Applied to every session: UTC everywhere, and Parquet timestamps as INT64 microseconds (UTC-adjusted)
# instead of Spark's legacy INT96, so pyarrow, DuckDB and Feast read them as UTC timestamps.
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# Only for an embedded session (a Connect server has its own static configuration).
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
}


class SparkResource(dg.ConfigurableResource):
    """A SparkSession, created lazily on first use and reused by the process."""

    master: str = Field(
        default="local[2]", description="Master of an embedded session (ignored with remote)."
    )
    remote: str | None = Field(
        default=None, description="Spark Connect URL, e.g. sc://spark-connect:15002; wins over master."
    )
    app_name: str = Field(default="mlops_assets", description="Application name.")
    shuffle_partitions: int = Field(
        default=4, description="spark.sql.shuffle.partitions: small locally, raise it on a cluster."
    )
    driver_memory: str | None = Field(
        default=None,
        description="spark.driver.memory of an embedded session (e.g. 4g); Spark's default if unset.",
    )
    conf: dict[str, str] = Field(default_factory=dict, description="Extra Spark configuration.")
    staging_dir: str | None = Field(
        default=None,
        description=(
            "A folder that the Spark cluster's executors and the step's process both reach (a shared mount), "
            "where a cluster without an S3 connector writes before the step uploads to an S3 lake."
        ),
    )

    _session: Any = PrivateAttr(default=None)

    @property
    def is_remote(self) -> bool:
        return bool(self.remote)

    def get_session(self):
        """The SparkSession (pyspark.sql.SparkSession, or its Connect counterpart)."""
        if self._session is None:
            self._session = self._build()
        return self._session

    def _build(self):
        from pyspark.sql import SparkSession

        conf = {**BASE_CONF, "spark.sql.shuffle.partitions": str(self.shuffle_partitions), **self.conf}
        builder = SparkSession.builder.appName(self.app_name)
        if self.remote:
            builder = builder.remote(self.remote)
        else:
            builder = builder.master(self.master)
            conf = {**LOCAL_CONF, **conf}
            if self.driver_memory:
                conf["spark.driver.memory"] = self.driver_memory
        for key, value in conf.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        # getOrCreate may return an existing session: make the runtime settings hold anyway.
        for key in ("spark.sql.session.timeZone", "spark.sql.shuffle.partitions", *BASE_CONF):
            if key in conf:
                session.conf.set(key, conf[key])
        return session

    def describe(self) -> str:
        return f"Spark Connect {self.remote}" if self.remote else f"embedded Spark {self.master}"


SPARK_REMOTE_ENV = "MLOPS_SPARK_REMOTE"
SPARK_MASTER_ENV = "MLOPS_SPARK_MASTER"
SPARK_STAGING_ENV = "MLOPS_SPARK_STAGING_DIR"


def spark_resource(settings: Settings | None = None) -> SparkResource:
    """MLOPS_SPARK_REMOTE (a Spark Connect URL, e.g. sc://spark-connect:15002) wins over MLOPS_SPARK_MASTER
    (default `local[2]`), in either profile. MLOPS_SPARK_STAGING_DIR: the shared folder of a Connect
    cluster that cannot write to S3 itself (such as the one `mlops cluster up` starts from the pyspark
    wheel, which has no hadoop-aws)."""
    remote = env_setting(SPARK_REMOTE_ENV)
    if remote is not None:
        return SparkResource(remote=remote, staging_dir=env_setting(SPARK_STAGING_ENV))
    master = env_setting(SPARK_MASTER_ENV)
    return SparkResource(master=master) if master is not None else SparkResource()
