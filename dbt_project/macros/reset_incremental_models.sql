{#-
    `on-run-start`: empty the incremental models when raw.events was replaced or lost rows since they
    were built (`pulse demo` truncates and reloads it; `pulse forget` deletes events), so this run
    rebuilds them from what raw.events holds now instead of keeping rows of events that are gone.
    Replaced = every event in raw.events was loaded after the newest one the models have seen; lost rows
    = raw.events holds fewer events than the stitched table. Both checks use indexes and one count.
    A new `alias` that merges a user id the models already hold as a customer (previousId = an old user
    id) also rebuilds them: that customer's rows must disappear from every mart, which the incremental
    paths (written for customers that gain or move events) do not do. Such merges are rare; an alias of
    an anonymous id (the usual case) is handled incrementally.
-#}
{% macro reset_incremental_models_if_raw_was_replaced() %}
    {%- if execute and not flags.FULL_REFRESH -%}
        {%- set stitched = adapter.get_relation(
            database=target.database, schema='intermediate', identifier='int_events_stitched_to_customers'
        ) -%}
        {%- set raw_events = adapter.get_relation(database=target.database, schema='raw', identifier='events') -%}
        {%- if stitched is not none and raw_events is not none -%}
            {%- set raw_columns = adapter.get_columns_in_relation(raw_events) | map(attribute='name') | list -%}
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
                        or exists (
                            select 1
                            from {{ raw_events }} as new_alias
                            inner join {{ stitched }} as merged
                                on merged.customer_id = coalesce(
                                    {% if 'previous_id' in raw_columns -%}
                                        nullif(trim(new_alias.previous_id), ''),
                                    {% endif -%}
                                    nullif(trim(new_alias.properties ->> 'previousId'), ''),
                                    nullif(trim(new_alias.context ->> 'previousId'), '')
                                )
                                and merged.customer_id is distinct from nullif(trim(new_alias.user_id), '')
                            where new_alias.loaded_at > {{ loaded_since(stitched) }}
                                and lower(new_alias.event_type) = 'alias'
                        )
                    )
            {%- endset -%}
            {%- if run_query(check).columns[0].values()[0] -%}
                {{ log("raw.events was replaced, lost rows or merged a customer: emptying the incremental models to rebuild them", info=True) }}
                {%- for schema, name in [
                    ('staging', 'stg_pulse__identifies'),
                    ('intermediate', 'int_events_stitched_to_customers'),
                    ('intermediate', 'int_customer_activity_aggregated_to_days'),
                    ('intermediate', 'int_customer_activity_aggregated_to_customers'),
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
