"""The Feast objects of the flight-delay problem, built for one location of the feature Parquet files.

`build_repo(source_root)` returns every object `feast apply` registers. It is a function, not module-level
objects, so that the same definitions serve the local lake (`<home>/lake/features`) and S3
(`s3://<bucket>/lake/features`) and tests with temporary lakes in one process; `repo.py` calls it for the
`feast` CLI. The files are written by the Spark asset `features/flight_features`, one file per table and
day: `<source_root>/<table>/<YYYY-MM-DD>.parquet`. A FileSource over the folder reads all of them (Dask's
`read_parquet` of a directory; names starting with `.` or `_`, i.e. files still being written, are skipped).

Point in time: every row's `event_timestamp` is when its values became known, so Feast's point-in-time
join (latest row at or before the prediction time, no older than the view's TTL) never uses the future:
  - flight_schedule: the schedule is published 24 h before the scheduled departure;
  - delay_stats_<e>: hourly snapshots that count only flights that had arrived before the snapshot;
  - weather_hourly: the hour H observation is complete at H+1 (its event_timestamp).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

# The service new training sets use. A registered model records the service it was trained with (the
# `feature_service` tag) and serving reads that one, so every version stays defined in `build_repo`.
FEATURE_SERVICE = "flight_delay_v2"
FEATURE_SERVICE_V1 = "flight_delay_v1"
TIMESTAMP_FIELD = "event_timestamp"

SCHEDULE_TTL = timedelta(days=2)
DELAY_STATS_TTL = timedelta(hours=2)  # snapshots are hourly: one older than 2 h is stale
WEATHER_TTL = timedelta(hours=3)

DELAY_ENTITIES = ("carrier", "origin", "dest", "route")
DELAY_WINDOWS = ("1d", "7d", "28d")
SCHEDULE_FEATURES = {  # name -> feast type name
    "sched_dep_hour_local": "Int64",
    "day_of_week": "Int64",
    "month": "Int64",
    "distance": "Float64",
    "plane_age_years": "Float64",
    "plane_seats": "Float64",
    "origin_hour_departures": "Int64",
    "origin_day_departures": "Int64",
}
DELAY_FEATURES = {
    **{f"flights_{w}": "Int64" for w in DELAY_WINDOWS},
    **{f"late_rate_{w}": "Float64" for w in DELAY_WINDOWS},
    **{f"mean_arr_delay_{w}": "Float64" for w in DELAY_WINDOWS},
}
# flight_delay_v1 read these weather features; v2 adds wind direction and the 3-hour changes.
WEATHER_FEATURES_V1 = (
    "temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib",
    "precip_3h", "wind_speed_3h", "visib_min_3h", "pressure_change_3h",
)  # fmt: skip
WEATHER_FEATURES_V2_ADDED = (
    "wind_dir", "temp_change_3h", "dewp_change_3h", "humid_change_3h", "wind_speed_change_3h",
    "visib_change_3h",
)  # fmt: skip
WEATHER_FEATURES = {name: "Float64" for name in (*WEATHER_FEATURES_V1, *WEATHER_FEATURES_V2_ADDED)}
ENTITY_DESCRIPTIONS = {
    "flight": (
        "flight_id",
        "One scheduled departure: carrier-number-origin-UTC minute (fct_flights.flight_id).",
    ),
    "carrier": ("carrier", "Two-letter carrier code."),
    "origin": ("origin", "New York origin airport (EWR, JFK, LGA)."),
    "dest": ("dest", "Destination FAA code."),
    "route": ("route", "origin-dest, e.g. JFK-LAX."),
}
# Folder of each view's files under the source root.
TABLES = {
    "flight_schedule": "flight_schedule",
    **{f"delay_stats_{e}": f"delay_stats_{e}" for e in DELAY_ENTITIES},
    "weather_hourly": "weather_hourly",
}


@dataclass(frozen=True)
class RepoObjects:
    entities: list
    sources: list
    feature_views: list
    feature_services: list

    def all(self) -> list:
        return [*self.entities, *self.sources, *self.feature_views, *self.feature_services]

    def feature_refs(self, service_name: str = FEATURE_SERVICE) -> list[str]:
        """`view:feature` of every feature of one service (default: the newest)."""
        service = next(s for s in self.feature_services if s.name == service_name)
        return [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]


def table_uri(source_root: str, table: str) -> str:
    return f"{source_root.rstrip('/')}/{TABLES[table]}"


def build_repo(source_root: str, s3_endpoint_override: str | None = None) -> RepoObjects:
    """Entities, sources, views and the feature service over `<source_root>/<table>/`."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.data_format import ParquetFormat
    from feast.types import Float64, Int64, String

    types = {"Int64": Int64, "Float64": Float64}
    tags = {"team": "ml-platform", "problem": "flight_delay"}

    entities = {
        name: Entity(
            name=name, join_keys=[key], value_type=ValueType.STRING, description=description, tags=tags
        )
        for name, (key, description) in ENTITY_DESCRIPTIONS.items()
    }

    def source(table: str, description: str) -> FileSource:
        return FileSource(
            name=f"{table}_source",
            path=table_uri(source_root, table),
            file_format=ParquetFormat(),
            timestamp_field=TIMESTAMP_FIELD,
            s3_endpoint_override=s3_endpoint_override,
            description=description,
            tags=tags,
        )

    def fields(features: dict[str, str]) -> list:
        return [Field(name=name, dtype=types[kind]) for name, kind in features.items()]

    sources, views = [], []

    def view(table: str, entity: str, key: str, ttl, features: dict[str, str], about: str, description: str):
        table_source = source(table, about)
        sources.append(table_source)
        views.append(
            FeatureView(
                name=table,
                entities=[entities[entity]],
                ttl=ttl,
                schema=[Field(name=key, dtype=String), *fields(features)],
                source=table_source,
                online=True,
                description=description,
                tags=tags,
            )
        )

    view(
        "flight_schedule", "flight", "flight_id", SCHEDULE_TTL, SCHEDULE_FEATURES,
        "Schedule and plane of each flight; known 24 h before the scheduled departure.",
        "Calendar, distance, plane and origin congestion of the scheduled flight.",
    )  # fmt: skip
    for entity in DELAY_ENTITIES:
        view(
            f"delay_stats_{entity}", entity, entity, DELAY_STATS_TTL, DELAY_FEATURES,
            f"Hourly snapshots of the arrival-delay history per {entity} (arrived flights only).",
            f"Flights, late rate and mean arrival delay per {entity} over 1, 7 and 28 days, "
            "counting only flights that had arrived before the snapshot.",
        )  # fmt: skip
    view(
        "weather_hourly", "origin", "origin", WEATHER_TTL, WEATHER_FEATURES,
        "Hourly weather at the origin, stamped when complete (H+1).",
        "Last complete hour of weather at the origin, plus 3-hour aggregates.",
    )  # fmt: skip
    about = (
        "Request with entity rows {flight_id, carrier, origin, dest, route}; read with "
        "full_feature_names=True (delay views share feature names)."
    )
    weather = views[-1]
    services = [
        # Kept so that models trained on v1 still resolve their 56 features (serving reads the version's
        # `feature_service` tag): the same views, the weather view projected onto its v1 features.
        FeatureService(
            name=FEATURE_SERVICE_V1,
            features=[*views[:-1], weather[list(WEATHER_FEATURES_V1)]],
            description=f"The 56 features of the first flight-delay models. {about}",
            tags={**tags, "version": "1"},
        ),
        FeatureService(
            name=FEATURE_SERVICE,
            features=views,
            description=(
                "Every feature of the flight-delay model, knowable at prediction time (departure - 2 h): "
                f"v1 plus wind direction and the 3-hour changes of the weather. {about}"
            ),
            tags={**tags, "version": "2"},
        ),
    ]
    return RepoObjects(
        entities=list(entities.values()), sources=sources, feature_views=views, feature_services=services
    )
