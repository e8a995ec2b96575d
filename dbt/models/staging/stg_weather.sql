{{ config(tags=['daily']) }}

-- One row per origin and hour. A row labelled hour H aggregates observations from H:00 to about
-- H:51, so it is complete only at H+1: `available_at_utc` is the earliest time a prediction may use it.
select
    cast(origin as varchar) as origin,
    cast(make_date(cast(year as integer), cast(month as integer), cast(day as integer)) as date)
        as weather_date,
    cast(hour as integer) as local_hour,
    cast(time_hour as timestamptz) as observed_hour_utc,
    cast(time_hour as timestamptz) + interval '1 hour' as available_at_utc,
    cast(temp as double precision) as temp_f,
    cast(dewp as double precision) as dewpoint_f,
    cast(humid as double precision) as humidity_pct,
    cast(wind_dir as double precision) as wind_dir_deg,
    cast(wind_speed as double precision) as wind_speed_mph,
    cast(wind_gust as double precision) as wind_gust_mph,
    cast(precip as double precision) as precip_in,
    cast(pressure as double precision) as pressure_mb,
    cast(visib as double precision) as visibility_mi
from {{ source('raw', 'weather') }}
