{#-
    dbt's `where` test config, plus one placeholder: `where: __loaded_since_last_build__` is replaced at
    run time by `loaded_since_last_build()` (pulse_helpers.sql). dbt's test config parser cannot call
    project macros itself, and the condition needs a query (the watermark) that must run when the test
    does, not at parse time. Otherwise the same as dbt's `default__get_where_subquery`.
-#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- if '__loaded_since_last_build__' in where -%}
            {%- set where = where | replace('__loaded_since_last_build__', loaded_since_last_build()) -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
