{#- Use the configured schema as is (`staging`, `marts`) instead of dbt's `<target schema>_<schema>`,
    so downstream readers find `marts.fct_flights` under every target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name else target.schema }}
{%- endmacro %}
