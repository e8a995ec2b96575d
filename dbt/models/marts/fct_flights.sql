{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='flight_date',
        on_schema_change='fail',
        tags=['daily'],
        meta={'partition_date_column': 'flight_date'},
    )
}}

{#- The partition window (inclusive local dates). Parsed as dates so that a malformed value fails
    here instead of reaching the SQL. Without vars every day in the lake is (re)built. -#}
{%- set min_date = var('min_date', none) -%}
{%- set max_date = var('max_date', none) -%}
{%- if min_date %}{% set min_date = modules.datetime.date.fromisoformat(min_date | string) %}{% endif -%}
{%- if max_date %}{% set max_date = modules.datetime.date.fromisoformat(max_date | string) %}{% endif -%}
{%- set horizon_hours = var('horizon_hours', 2) | int -%}
{%- set departure_tz = "'America/New_York'" -%}

with flights as (
    select *
    from {{ ref('stg_flights') }}
    where true
    {%- if min_date %}
        and flight_date >= cast('{{ min_date }}' as date)
    {%- endif %}
    {%- if max_date %}
        and flight_date <= cast('{{ max_date }}' as date)
    {%- endif %}
),

airports as (
    select airport_code, airport_name, tzone from {{ ref('stg_airports') }}
),

-- Destinations the airports table lacks (see var airport_fallbacks in dbt_project.yml).
airport_fallbacks as (
    {%- for code, airport in var('airport_fallbacks').items() %}
    select
        '{{ code }}' as airport_code,
        '{{ airport.name | replace("'", "''") }}' as airport_name,
        '{{ airport.tzone }}' as tzone
    {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

enriched as (
    select
        flights.*,
        airlines.carrier_name,
        origin_airport.airport_name as origin_name,
        coalesce(dest_airport.airport_name, dest_fallback.airport_name) as dest_name,
        coalesce(dest_airport.tzone, dest_fallback.tzone) as dest_tzone,
        planes.year_built as plane_year_built,
        planes.seats as plane_seats,
        planes.engines as plane_engines,
        planes.aircraft_type as plane_type,
        planes.manufacturer as plane_manufacturer
    from flights
    left join {{ ref('stg_airlines') }} as airlines on airlines.carrier = flights.carrier
    left join airports as origin_airport on origin_airport.airport_code = flights.origin
    left join airports as dest_airport on dest_airport.airport_code = flights.dest
    left join airport_fallbacks as dest_fallback on dest_fallback.airport_code = flights.dest
    left join {{ ref('stg_planes') }} as planes on planes.tailnum = flights.tailnum
),

local_times as (
    select
        *,
        {{ hhmm_on_date('flight_date', 'sched_dep_time') }} as sched_dep_local,
        {{ hhmm_on_date('flight_date', 'sched_arr_time') }} as sched_arr_local_same_day
    from enriched
),

departures as (
    select
        *,
        {{ local_to_utc('sched_dep_local', departure_tz) }} as sched_dep_utc
    from local_times
),

arrivals as (
    select
        *,
        -- The schedule gives the arrival's destination-local wall clock without a date: on the day of
        -- departure, or on the next day when that would land before the departure (overnight flights).
        case
            when {{ local_to_utc('sched_arr_local_same_day', 'dest_tzone') }} < sched_dep_utc
                then sched_arr_local_same_day + interval '1 day'
            else sched_arr_local_same_day
        end as sched_arr_local
    from departures
),

final as (
    select
        -- Cast: on PostgreSQL `||` gives text, and the incremental run's schema check would see a type
        -- change against the contract's varchar.
        cast(
            carrier || '-' || cast(flight_number as varchar) || '-' || origin || '-'
            || {{ utc_minute_key('sched_dep_utc') }} as varchar
        ) as flight_id,
        flight_date,
        carrier,
        carrier_name,
        flight_number,
        tailnum,
        origin,
        origin_name,
        dest,
        dest_name,
        dest_tzone,
        distance,
        sched_dep_local,
        sched_dep_utc,
        sched_arr_local,
        {{ local_to_utc('sched_arr_local', 'dest_tzone') }} as sched_arr_utc,
        sched_dep_utc - interval '{{ horizon_hours }} hours' as prediction_time_utc,
        plane_year_built,
        plane_seats,
        plane_engines,
        plane_type,
        plane_manufacturer,
        arr_delay,
        {{ local_to_utc('sched_arr_local', 'dest_tzone') }} + {{ minutes('arr_delay') }} as arrived_at_utc,
        arr_delay is null as is_cancelled_or_diverted,
        case
            when arr_delay is null then null
            when arr_delay > 15 then 1
            else 0
        end as label_late
    from arrivals
)

select * from final
