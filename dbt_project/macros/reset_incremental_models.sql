{#-
    `on-run-start`: empty the incremental models when raw.events was replaced or lost rows since they
    were built (`pulse demo` truncates and reloads it; a retention job deletes old events), so this run
    rebuilds them from what raw.events holds now instead of keeping rows of events that are gone.
    Replaced = every event in raw.events was loaded after the newest one the models have seen (an index
    lookup each side); lost rows = a deletion in `raw.events_deletions`, the log that triggers on
    raw.events write (src/pulse/sql/schema.sql). `pulse forget` deletes the same events from the models
    in its own transaction and does not log them, so the run after it stays incremental. The log is
    emptied, up to what this check read, when this run resets the models or builds them for the first
    time; not on a `--full-refresh`, which may select only some models (the next plain run then resets
    once more). (Without the log, in a warehouse whose raw schema predates it, lost rows = raw.events
    holding fewer events than the stitched table: two counts.)
    A new `alias` that merges a user id the models already hold as a customer (previousId = an old user
    id) also rebuilds them: that customer's rows must disappear from every mart, which the incremental
    paths (written for customers that gain or move events) do not do. Such merges are rare; an alias of
    an anonymous id (the usual case) is handled incrementally.
-#}
{% macro reset_incremental_models_if_raw_was_replaced() %}
    {#- Only a run that builds an incremental model may reset them: the audience build (`pulse audiences`,
        which holds the marts lock shared, as a reader) must never empty the marts other readers use. -#}
    {%- set ns = namespace(builds_incremental=false) -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.unique_id in selected_resources and node.config.materialized == 'incremental' -%}
                {%- set ns.builds_incremental = true -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if ns.builds_incremental -%}
        {%- set stitched = adapter.get_relation(
            database=target.database, schema='intermediate', identifier='int_events_stitched_to_customers'
        ) -%}
        {%- set raw_events = adapter.get_relation(database=target.database, schema='raw', identifier='events') -%}
        {%- set deletions = adapter.get_relation(
            database=target.database, schema='raw', identifier='events_deletions'
        ) -%}
        {%- set logged_until = none -%}
        {%- if deletions is not none -%}
            {%- set logged_until = run_query("select max(deleted_at) from " ~ deletions).columns[0].values()[0] -%}
        {%- endif -%}
        {%- set consumed = stitched is none -%}
        {%- if stitched is not none and raw_events is not none and not flags.FULL_REFRESH -%}
            {%- set raw_columns = adapter.get_columns_in_relation(raw_events) | map(attribute='name') | list -%}
            {%- set check -%}
                with

                stitched_events as (

                    select max(loaded_at) as newest_loaded_at from {{ stitched }}

                ),

                -- Materialized: found through the `loaded_at` index first. Inlined into the `exists`
                -- below, the planner would scan all of raw.events, expecting an early match.
                new_aliases as materialized (

                    select
                        coalesce(
                            {% if 'previous_id' in raw_columns -%}
                                nullif(trim(previous_id), ''),
                            {% endif -%}
                            nullif(trim(properties ->> 'previousId'), ''),
                            nullif(trim(context ->> 'previousId'), '')
                        ) as previous_id,
                        nullif(trim(user_id), '') as user_id
                    from {{ raw_events }}
                    where loaded_at > {{ loaded_since(stitched) }}
                        and lower(event_type) = 'alias'

                )

                select
                    stitched_events.newest_loaded_at is not null
                    and (
                        coalesce((select min(loaded_at) from {{ raw_events }}) > stitched_events.newest_loaded_at, true)
                        {% if deletions is not none -%}
                            or {{ 'true' if logged_until is not none else 'false' }}
                        {%- else -%}
                            or (select count(*) from {{ raw_events }}) < (select count(*) from {{ stitched }})
                        {%- endif %}
                        or exists (
                            select 1
                            from new_aliases
                            inner join {{ stitched }} as merged
                                on new_aliases.previous_id = merged.customer_id
                                and merged.customer_id is distinct from new_aliases.user_id
                        )
                    )
                from stitched_events
            {%- endset -%}
            {%- if run_query(check).columns[0].values()[0] -%}
                {{ log("raw.events was replaced, lost rows or merged a customer: emptying the incremental models to rebuild them", info=True) }}
                {#- Every incremental model, as dbt's graph names them: none is listed by hand. -#}
                {%- for node in graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
                    | selectattr('config.materialized', 'equalto', 'incremental') -%}
                    {%- set relation = adapter.get_relation(
                        database=node.database, schema=node.schema, identifier=node.alias
                    ) -%}
                    {%- if relation is not none -%}
                        {%- do run_query("truncate " ~ relation) -%}
                    {%- endif -%}
                {%- endfor -%}
                {%- set consumed = true -%}
            {%- endif -%}
        {%- endif -%}
        {%- if consumed and logged_until is not none -%}
            {%- do run_query("delete from " ~ deletions ~ " where deleted_at <= '" ~ logged_until ~ "'::timestamptz") -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
