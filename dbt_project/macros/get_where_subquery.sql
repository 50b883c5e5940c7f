{#-
    dbt's `where` test config, plus two placeholders, replaced when the test runs:
    - `__loaded_since_last_build__`: `loaded_since_last_build()` (pulse_helpers.sql). dbt's test config
      parser cannot call project macros itself, and the condition needs a query (the watermark) that must
      run when the test does, not at parse time.
    - `__written_by_this_run__`: `_updated_at >=` this run's start, the rows an incremental model wrote in
      this run. Not `{{ run_started_at }}` in the YAML: dbt renders test configs when it parses, and
      partial parsing keeps them, so a later run would test against the start of the run that last
      parsed the file (on an incremental run after a full build: every row the full build wrote).
    Otherwise the same as dbt's `default__get_where_subquery`.
-#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- if '__loaded_since_last_build__' in where -%}
            {%- set where = where | replace('__loaded_since_last_build__', loaded_since_last_build()) -%}
        {%- endif -%}
        {%- if '__written_by_this_run__' in where -%}
            {%- set where = where | replace(
                '__written_by_this_run__', "_updated_at >= '" ~ run_started_at ~ "'::timestamptz"
            ) -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
