{#- Rows where `column_name` is null but `condition` is not true, or the other way round, fail. -#}
{% test null_exactly_when(model, column_name, condition) %}
select *
from {{ model }}
where ({{ column_name }} is null) <> coalesce(({{ condition }}), false)
{% endtest %}
