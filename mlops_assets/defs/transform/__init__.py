"""Transform stage: the dbt project in `dbt/` as Dagster assets (staging views and fct_flights)."""
