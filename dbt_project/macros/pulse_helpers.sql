{#- Small SQL helpers shared by the models. -#}

{#- Event names as the contract normalises them: `Order Completed` = `order_completed`. -#}
{% macro normalise_event_name(column) -%}
    trim(both '_' from regexp_replace(lower(trim({{ column }})), '[^0-9a-z]+', '_', 'g'))
{%- endmacro %}

{#- A JSON value as numeric when it is a JSON number (or a numeric string), else null. -#}
{% macro json_number(json_path) -%}
    case
        when jsonb_typeof({{ json_path }}) = 'number' then ({{ json_path }})::text::numeric
        when jsonb_typeof({{ json_path }}) = 'string'
            and ({{ json_path }} #>> '{}') ~ '^\s*-?[0-9]+(\.[0-9]+)?\s*$'
            then ({{ json_path }} #>> '{}')::numeric
    end
{%- endmacro %}

{#- The UTC calendar date of a timestamptz. -#}
{% macro utc_date(column) -%}
    ({{ column }} at time zone 'UTC')::date
{%- endmacro %}

{#-
    Quintile score 1..5 (5 = best, i.e. highest in `order_by`) within `partition_by`. Ties get the same
    score (the score of the tie's lowest rank), so the result never depends on row order: recomputing a
    snapshot gives the same scores.
-#}
{% macro quintile_score(order_by, partition_by=none) -%}
    least(5, 1 + floor(5 * percent_rank() over (
        {%- if partition_by %} partition by {{ partition_by }}{% endif %} order by {{ order_by }}
    )))::int
{%- endmacro %}

{#-
    Named RFM segment from the recency score and the frequency+monetary score (1..5 each), on the
    common RFM grid: recency down, frequency/monetary across. Complete: every (r, fm) pair has a name.
-#}
{% macro rfm_segment(recency_score, fm_score) -%}
    case
        when {{ recency_score }} >= 4 and {{ fm_score }} >= 4 then 'champions'
        when {{ recency_score }} >= 4 and {{ fm_score }} >= 2 then 'potential loyalists'
        when {{ recency_score }} >= 4 then 'new'
        when {{ recency_score }} = 3 and {{ fm_score }} >= 3 then 'loyal'
        when {{ recency_score }} = 3 then 'hibernating'
        when {{ fm_score }} = 5 then 'can''t lose'
        when {{ fm_score }} >= 3 then 'at risk'
        when {{ recency_score }} = 2 then 'hibernating'
        else 'lost'
    end
{%- endmacro %}

{#-
    Watermarks of incremental models, resolved to literals when the model runs, so PostgreSQL plans the
    filter with its statistics (an index scan over the few new rows) instead of guessing a third of the
    table for `> (select max(...))`.
-#}
{% macro _watermark(sql) -%}
    {%- if execute -%}
        {%- set value = run_query(sql).columns[0].values()[0] -%}
        {%- if value is none -%}'-infinity'::timestamptz{%- else -%}'{{ value }}'::timestamptz{%- endif -%}
    {%- else -%}
        ({{ sql }})
    {%- endif -%}
{%- endmacro %}

{#- The newest `loaded_at` an incremental model has seen, minus the `lookback` var. -#}
{% macro loaded_since(relation) -%}
    {{ _watermark("select max(loaded_at) - interval '" ~ var("lookback") ~ "' from " ~ relation) }}
{%- endmacro %}

{#- The newest `_updated_at` (dbt run start) of an incremental model: rows upstream changed after it are new to it. -#}
{% macro updated_since(relation) -%}
    {{ _watermark("select max(_updated_at) from " ~ relation ~ " as watermarked") }}
{%- endmacro %}

{#-
    `where` of the data tests on the staging views and the source: on an incremental build, only the
    events loaded since the last build (the stitched model's `loaded_at` watermark minus `lookback`),
    which are the rows this build reads; on a full refresh (or before the first build), every row. The
    views are deduplicated on `event_id` and raw.events has it as its primary key, so testing the new
    rows is what can still fail.
-#}
{% macro loaded_since_last_build() -%}
    {%- set stitched = none -%}
    {%- if execute and not flags.FULL_REFRESH -%}
        {%- set stitched = adapter.get_relation(
            database=target.database, schema='intermediate', identifier='int_events_stitched_to_customers'
        ) -%}
    {%- endif -%}
    {%- if stitched is none -%}
        true
    {%- else -%}
        loaded_at >= {{ loaded_since(stitched) }}
    {%- endif -%}
{%- endmacro %}

{#-
    Post-hook of the marts and the incremental models: `analyze` the table when it has no statistics
    (a new table: every build of a `table` model, a full build of an incremental one) or has grown by
    more than `threshold` since its statistics were taken (the file's size against `relpages` of the
    last analyze, which counts this run's uncommitted rows too); otherwise nothing. A daily increment of
    about 1% leaves the statistics good enough (the `_updated_at` / `loaded_at` watermarks beyond the
    histogram are read from the indexes), and analyzing a million-row table costs about a second per
    model on the incremental build's critical path. PostgreSQL's autovacuum analyzes on the same 10%
    rule between runs. "No statistics" is read from pg_stats, not `reltuples`: CREATE INDEX (which dbt
    runs before the post-hooks) sets `reltuples` without collecting any statistics, and a table the
    planner knows nothing about gets default estimates (a third of the table for `_updated_at > x`),
    which turn the incremental runs' index lookups into scans of whole tables.
-#}
{% macro analyze_if_new_or_grown(relation, threshold=0.1) -%}
    {%- if execute -%}
        {%- set check -%}
            select
                not exists (
                    select 1 from pg_stats
                    where schemaname = '{{ relation.schema }}' and tablename = '{{ relation.identifier }}'
                )
                or pg_relation_size(c.oid) > (1 + {{ threshold }}) * c.relpages::bigint
                * current_setting('block_size')::bigint
            from pg_class as c
            where c.oid = '{{ relation }}'::regclass
        {%- endset -%}
        {%- if run_query(check).columns[0].values()[0] -%}
            analyze {{ relation }}
        {%- else -%}
            select 1
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
