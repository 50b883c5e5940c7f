{#-
    `on-run-start`: empty the incremental models when raw.events was replaced or lost rows since they
    were built (`pulse demo` truncates and reloads it; `pulse forget` deletes events), so this run
    rebuilds them from what raw.events holds now instead of keeping rows of events that are gone.
    Replaced = every event in raw.events was loaded after the newest one the models have seen; lost rows
    = raw.events holds fewer events than the stitched table. Both checks use indexes and one count.
-#}
{% macro reset_incremental_models_if_raw_was_replaced() %}
    {%- if execute and not flags.FULL_REFRESH -%}
        {%- set stitched = adapter.get_relation(
            database=target.database, schema='intermediate', identifier='int_events_stitched_to_customers'
        ) -%}
        {%- set raw_events = adapter.get_relation(database=target.database, schema='raw', identifier='events') -%}
        {%- if stitched is not none and raw_events is not none -%}
            {%- set check -%}
                select
                    (select count(*) from {{ stitched }}) > 0
                    and (
                        coalesce(
                            (select min(loaded_at) from {{ raw_events }})
                            > (select max(loaded_at) from {{ stitched }}),
                            true
                        )
                        or (select count(*) from {{ raw_events }}) < (select count(*) from {{ stitched }})
                    )
            {%- endset -%}
            {%- if run_query(check).columns[0].values()[0] -%}
                {{ log("raw.events was replaced or lost rows: emptying the incremental models to rebuild them", info=True) }}
                {%- for schema, name in [
                    ('intermediate', 'int_events_stitched_to_customers'),
                    ('intermediate', 'int_customer_activity_aggregated_to_days'),
                    ('marts', 'sessions'),
                    ('marts', 'customer_features'),
                ] -%}
                    {%- set relation = adapter.get_relation(database=target.database, schema=schema, identifier=name) -%}
                    {%- if relation is not none -%}
                        {%- do run_query("truncate " ~ relation) -%}
                    {%- endif -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
