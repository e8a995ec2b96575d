{#- Time helpers. The SQL is portable between DuckDB (ICU) and PostgreSQL: both read
    `<timestamp> at time zone '<zone>'` as "this wall-clock time in that zone" and return an instant
    (timestamptz), and `<timestamptz> at time zone 'UTC'` as the UTC wall clock. -#}

{#- A local wall-clock timestamp from a calendar date and an HHMM integer (e.g. 1545 -> 15:45).
    Built as date + hours + minutes, so 2400 (midnight at the end of the day) is valid too. -#}
{% macro hhmm_on_date(date_expr, hhmm) -%}
    (cast({{ date_expr }} as timestamp)
        + cast(floor({{ hhmm }} / 100) as integer) * interval '1 hour'
        + cast({{ hhmm }} % 100 as integer) * interval '1 minute')
{%- endmacro %}

{#- The instant (timestamptz) at which the wall clock of `tz` shows `local_ts`. -#}
{% macro local_to_utc(local_ts, tz) -%}
    ({{ local_ts }} at time zone {{ tz }})
{%- endmacro %}

{#- A stable text rendering of an instant to the minute, in UTC: 20130101T1015Z. -#}
{% macro utc_minute_key(ts) -%}
    {{ return(adapter.dispatch('utc_minute_key', 'mlops')(ts)) }}
{%- endmacro %}

{% macro default__utc_minute_key(ts) -%}
    to_char({{ ts }} at time zone 'UTC', 'YYYYMMDD"T"HH24MI"Z"')
{%- endmacro %}

{% macro duckdb__utc_minute_key(ts) -%}
    strftime({{ ts }} at time zone 'UTC', '%Y%m%dT%H%MZ')
{%- endmacro %}

{#- `n` whole minutes as an interval (arrival delays are whole minutes stored as doubles). -#}
{% macro minutes(n) -%}
    (cast({{ n }} as integer) * interval '1 minute')
{%- endmacro %}
