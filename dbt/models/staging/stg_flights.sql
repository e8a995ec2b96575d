{{ config(tags=['daily']) }}

-- One row per scheduled departure, typed and renamed; still carries the actual-time columns
-- (dep_time, dep_delay, arr_time, air_time), which only the label may use downstream.
select
    cast(make_date(cast(year as integer), cast(month as integer), cast(day as integer)) as date)
        as flight_date,
    cast(year as integer) as year,
    cast(month as integer) as month,
    cast(day as integer) as day,
    cast(carrier as varchar) as carrier,
    cast(flight as integer) as flight_number,
    cast(tailnum as varchar) as tailnum,
    cast(origin as varchar) as origin,
    cast(dest as varchar) as dest,
    cast(sched_dep_time as integer) as sched_dep_time,
    cast(sched_arr_time as integer) as sched_arr_time,
    cast(hour as integer) as sched_dep_hour,
    cast(minute as integer) as sched_dep_minute,
    cast(time_hour as timestamptz) as sched_dep_hour_utc,
    cast(distance as double precision) as distance,
    cast(dep_time as integer) as dep_time,
    cast(dep_delay as double precision) as dep_delay,
    cast(arr_time as integer) as arr_time,
    cast(arr_delay as double precision) as arr_delay,
    cast(air_time as double precision) as air_time
from {{ source('raw', 'flights') }}
