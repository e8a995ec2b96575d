{#- Rows where `column_name` is not strictly before `later_column` (both non-null) fail. -#}
{% test timestamp_before(model, column_name, later_column) %}
select *
from {{ model }}
where {{ column_name }} is not null
  and {{ later_column }} is not null
  and {{ column_name }} >= {{ later_column }}
{% endtest %}
