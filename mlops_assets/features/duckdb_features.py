"""The same feature tables as flight_features.py, in DuckDB SQL (benchmark and parity test).

Written independently of the Spark version (SQL instead of the DataFrame API) so that the parity test
compares two implementations of one specification (see flight_features.py's docstring). The
connection must have relations named `flights` and `weather` with the columns of `marts.fct_flights`
and `staging.stg_weather` (tables, views, or registered Arrow/pandas objects), and TimeZone UTC.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mlops_assets.features.flight_features import (
    DAY_COLUMN,
    ENTITY_HISTORY_DAYS,
    ENTITY_TYPES,
    LATE_MINUTES,
    STAT_COLUMNS,
    WEATHER_CHANGES,
    WEATHER_COLUMNS,
    WINDOWS_DAYS,
    snapshot_hours,
)


def _d(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def flight_schedule_sql(first: dt.date, last: dt.date) -> str:
    return f"""
    select
        cast(flight_id as varchar) as flight_id,
        cast(sched_dep_utc as timestamptz) - interval 24 hours as event_timestamp,
        cast(origin as varchar) as origin,
        cast(dest as varchar) as dest,
        cast(carrier as varchar) as carrier,
        origin || '-' || dest as route,
        cast(hour(sched_dep_local) as integer) as sched_dep_hour_local,
        cast(isodow(flight_date) as integer) as day_of_week,
        cast(month(flight_date) as integer) as month,
        cast(distance as double) as distance,
        cast(year(flight_date) - plane_year_built as double) as plane_age_years,
        cast(plane_seats as double) as plane_seats,
        cast(count(*) over (partition by origin, flight_date, date_trunc('hour', sched_dep_local))
            as integer) as origin_hour_departures,
        cast(count(*) over (partition by origin, flight_date) as integer) as origin_day_departures,
        strftime(flight_date, '%Y-%m-%d') as {DAY_COLUMN}
    from flights
    where flight_date between {_d(first)} and {_d(last)}
    """


def _snapshots_values(hours: list[tuple[dt.date, int]]) -> str:
    rows = ", ".join(f"({_d(day)}, {t})" for day, t in hours)
    return f"(values {rows}) as s(day, t)"


def delay_stats_sql(first: dt.date, last: dt.date, only_hour: int | None = None) -> str:
    """Every hourly snapshot of the days, or with `only_hour` (UTC epoch second of one of them) that
    snapshot alone (the stream's follower computes one hour at a time)."""
    hours = snapshot_hours(first, last)
    if only_hour is not None:
        hours = [(day, t) for day, t in hours if t == only_hour]
        if not hours:
            raise ValueError(f"{only_hour} is not a snapshot hour of {first}..{last}")
    lowest = hours[0][1] - max(WINDOWS_DAYS) * 86400
    highest = hours[-1][1]
    ids = {kind: "origin || '-' || dest" if kind == "route" else kind for kind in ENTITY_TYPES}
    entity_rows = " union all ".join(
        f"select '{kind}' as entity_type, cast({ids[kind]} as varchar) as entity_id, flight_date, "
        "cast(arrived_at_utc as timestamptz) as arrived_at_utc, arr_delay from flights"
        for kind in ENTITY_TYPES
    )
    windows = []
    for w in WINDOWS_DAYS:
        frame = f"over (entity order by t range between {w * 86400} preceding and 1 preceding)"
        windows.append(
            f"coalesce(sum(n) {frame}, 0) as n_{w}, sum(late) {frame} as late_{w}, "
            f"sum(delay_sum) {frame} as delay_{w}"
        )
    stats = []
    for w in WINDOWS_DAYS:
        stats += [
            f"cast(n_{w} as integer) as flights_{w}d",
            f"case when n_{w} > 0 then cast(late_{w} as double) / n_{w} end as late_rate_{w}d",
            f"case when n_{w} > 0 then cast(delay_{w} as double) / n_{w} end as mean_arr_delay_{w}d",
        ]
    return f"""
    with entity_rows as ({entity_rows}),
    active as (
        select distinct entity_type, entity_id, cast(flight_date + k * interval 1 day as date) as day
        from (select distinct entity_type, entity_id, flight_date from entity_rows)
        cross join range(0, {ENTITY_HISTORY_DAYS + 1}) as r(k)
        where cast(flight_date + k * interval 1 day as date) between {_d(first)} and {_d(last)}
    ),
    grid as (
        select entity_type, entity_id, s.t, s.day, true as is_snapshot,
            0::bigint as n, 0::bigint as late, 0.0::double as delay_sum
        from active join {_snapshots_values(hours)} using (day)
    ),
    outcomes as (
        select entity_type, entity_id, t, null::date as day, false as is_snapshot,
            count(*) as n,
            sum(case when arr_delay > {LATE_MINUTES} then 1 else 0 end)::bigint as late,
            sum(cast(arr_delay as double)) as delay_sum
        from (
            select *, cast(floor(epoch(arrived_at_utc) / 3600) as bigint) * 3600 as t
            from entity_rows where arrived_at_utc is not null
        )
        where t >= {lowest} and t < {highest}
        group by all
    ),
    windowed as (
        select entity_type, entity_id, t, day, is_snapshot, {", ".join(windows)}
        from (select * from grid union all by name select * from outcomes)
        window entity as (partition by entity_type, entity_id)
    )
    select entity_type, entity_id, to_timestamp(t) as event_timestamp, {", ".join(stats)},
        strftime(day, '%Y-%m-%d') as {DAY_COLUMN}
    from windowed
    where is_snapshot
    """


def weather_hourly_sql(first: dt.date, last: dt.date) -> str:
    columns = ", ".join(f"cast({source} as double) as {name}" for name, source in WEATHER_COLUMNS.items())
    frame = "over (partition by origin order by t range between 7200 preceding and current row)"
    changes = ", ".join(f"r.{name} - e.{name} as {name}_change_3h" for name in WEATHER_CHANGES)
    return f"""
    with base as (
        select cast(origin as varchar) as origin, weather_date,
            cast(epoch(observed_hour_utc) as bigint) as t,
            cast(available_at_utc as timestamptz) as event_timestamp, {columns}
        from weather
    ),
    rolled as (
        select *, sum(precip) {frame} as precip_3h, avg(wind_speed) {frame} as wind_speed_3h,
            min(visib) {frame} as visib_min_3h
        from base
    )
    select r.origin, r.event_timestamp, {", ".join(f"r.{name}" for name in WEATHER_COLUMNS)},
        r.precip_3h, r.wind_speed_3h, r.visib_min_3h, {changes},
        strftime(r.weather_date, '%Y-%m-%d') as {DAY_COLUMN}
    from rolled as r
    left join base as e on e.origin = r.origin and e.t = r.t - 10800
    where r.weather_date between {_d(first)} and {_d(last)}
    """


def entity_table_sql(source: str, entity_type: str) -> str:
    return (
        f"select entity_id as {entity_type}, event_timestamp, {', '.join(STAT_COLUMNS)}, {DAY_COLUMN} "
        f"from {source} where entity_type = '{entity_type}'"
    )


def build_features(con, first: dt.date, last: dt.date) -> dict[str, str]:
    """Creates temp tables `features_<table>` on `con`; returns their names by table."""
    queries = {
        "flight_schedule": flight_schedule_sql(first, last),
        "delay_stats": delay_stats_sql(first, last),
        "weather_hourly": weather_hourly_sql(first, last),
    }
    names = {}
    for table, sql in queries.items():
        con.execute(f"create or replace temp table features_{table} as {sql}")
        names[table] = f"features_{table}"
    for entity in ENTITY_TYPES:
        table = f"delay_stats_{entity}"
        query = entity_table_sql(names["delay_stats"], entity)
        con.execute(f"create or replace temp table features_{table} as {query}")
        names[table] = f"features_{table}"
    return names


def write_features(con, first: dt.date, last: dt.date, out_dir: Path, entity_tables: bool = True) -> None:
    """The tables as Parquet partitioned by day, out_dir/<table>/feature_day=<day>/*.parquet, streamed
    by COPY. With entity_tables, delay_stats is held as a temp table and split per entity type too
    (the benchmark leaves that out, as the Spark asset splits the day files outside Spark)."""

    def copy(query: str, table: str) -> None:
        target = out_dir / table
        con.execute(f"copy ({query}) to '{target}' (format parquet, partition_by ({DAY_COLUMN}), overwrite)")

    copy(flight_schedule_sql(first, last), "flight_schedule")
    copy(weather_hourly_sql(first, last), "weather_hourly")
    if not entity_tables:
        copy(delay_stats_sql(first, last), "delay_stats")
        return
    con.execute(f"create or replace temp table features_delay_stats as {delay_stats_sql(first, last)}")
    copy("select * from features_delay_stats", "delay_stats")
    for entity in ENTITY_TYPES:
        copy(entity_table_sql("features_delay_stats", entity), f"delay_stats_{entity}")
    con.execute("drop table features_delay_stats")
