{%- set metrics = [
    ('events', "count(*)"),
    ('page_views', "count(*) filter (where event_type = 'page')"),
    ('product_views', "count(*) filter (where event_name = 'product_viewed')"),
    ('cart_adds', "count(*) filter (where event_name = 'product_added')"),
    ('cart_removes', "count(*) filter (where event_name = 'product_removed')"),
    ('checkouts', "count(*) filter (where event_name = 'checkout_started')"),
    ('orders', "count(distinct coalesce(order_id, event_id)) filter (where event_name = 'order_completed')"),
    ('email_opens', "count(*) filter (where event_name = 'email_opened')"),
    ('email_clicks', "count(*) filter (where event_name = 'email_clicked')"),
] -%}
{%- set category_metrics = [] -%}
{%- for category in var('affinity_categories') -%}
    {%- do category_metrics.append((
        'product_views_' ~ category,
        "count(*) filter (where event_name = 'product_viewed' and product_category = '" ~ category ~ "')",
    )) -%}
{%- endfor -%}
{%- set count_columns = metrics | map(attribute=0) | list
    + ['sessions', 'abandoned_carts']
    + category_metrics | map(attribute=0) | list -%}
{%- set value_columns = count_columns + ['revenue'] -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['customer_id', 'activity_date', 'identified_date'],
        post_hook='{{ analyze_if_new_or_grown(this) }}',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_id', 'activity_date', 'identified_date'], 'unique': True},
            {'columns': ['activity_date']},
            {'columns': ['identified_date']},
            {'columns': ['_updated_at']},
        ],
    )
}}
-- A customer's activity per UTC day, split by the day it became attributable to them
-- (`identified_date`): the building block of the point-in-time features. Most rows have
-- identified_date = activity_date; anonymous browsing claimed by a later sign-in has the sign-in's day.
-- Sessions and abandoned carts count on the day the session started.
--
-- Incremental: every (customer, day) a changed event or rebuilt session can touch (see affected_cells)
-- is re-aggregated and compared with what is stored; only rows that differ are written (a row that
-- disappeared is written with zeros), so `_updated_at` marks exactly the cells whose numbers changed.
with

events as (

    select * from {{ ref('int_events_stitched_to_customers') }}

),

sessions as (

    select * from {{ ref('sessions') }}

),

{% if is_incremental() %}

-- Each import CTE is read once (by the cell lookups below, or by the full build's aggregation) and the
-- tables are read again directly for the changed rows, not shared: PostgreSQL inlines a CTE used once,
-- so each read reaches the tables' indexes (`_updated_at`, visitor, customer and day). The per-key
-- reads are lateral lookups (`offset 0` keeps PostgreSQL from flattening them into joins that it may
-- plan as scans of the whole tables when its estimates are off): the work is proportional to the cells
-- that changed, whatever the statistics say.
changed_events as (

    select
        customer_id,
        replaced_customer_id,
        event_date
    from {{ ref('int_events_stitched_to_customers') }}
    where _updated_at > {{ updated_since(this) }}

),

resessioned_events as (

    -- See macros/resessioned_events.sql.
    {{ resessioned_events() }}

),

visitor_customers as (

    select
        visitor_key,
        customer_id
    from resessioned_events
    where customer_id is not null
    union
    select
        visitor_key,
        replaced_customer_id
    from resessioned_events
    where replaced_customer_id is not null

),

visitor_days as (

    select distinct
        visitor_key,
        event_date
    from resessioned_events

),

affected_cells as (

    -- (customer, day) cells a change can touch: the customers a changed event belongs to now and
    -- belonged to before, on its day; for rebuilt sessions, every customer of the visitor's rebuilt
    -- events (now or before) on every day of those events.
    select
        customer_id,
        event_date as activity_date
    from changed_events
    where customer_id is not null
    union
    select
        replaced_customer_id,
        event_date
    from changed_events
    where replaced_customer_id is not null
    union
    select
        visitor_customers.customer_id,
        visitor_days.event_date
    from visitor_customers
    inner join visitor_days on visitor_customers.visitor_key = visitor_days.visitor_key

),

cell_events as (

    -- The events of the affected cells (the stitched table's customer and day index).
    select day_events.*
    from affected_cells
    cross join lateral (
        select * from events as stitched
        where stitched.customer_id = affected_cells.customer_id
            and stitched.event_date = affected_cells.activity_date
        offset 0  -- noqa: AM09
    ) as day_events

),

cell_sessions as (

    -- The sessions that started in the affected cells (the sessions' customer and day index).
    select day_sessions.*
    from affected_cells
    cross join lateral (
        select * from sessions as started
        where started.customer_id = affected_cells.customer_id
            and started.started_date = affected_cells.activity_date
        offset 0  -- noqa: AM09
    ) as day_sessions

),

{% endif %}

event_counts as (

    select
        customer_id,
        event_date as activity_date,
        identified_date,
        {%- for name, expression in metrics + category_metrics %}
        {{ expression }} as {{ name }},
        {%- endfor %}
        coalesce(sum(order_revenue) filter (where event_name = 'order_completed'), 0) as revenue
    from {% if is_incremental() %}cell_events{% else %}events{% endif %}
    where customer_id is not null
    group by customer_id, event_date, identified_date

),

session_counts as (

    select
        customer_id,
        started_date as activity_date,
        identified_date,
        count(*) as sessions,
        count(*) filter (where has_abandoned_cart) as abandoned_carts
    from {% if is_incremental() %}cell_sessions{% else %}sessions{% endif %}
    where customer_id is not null
    group by customer_id, started_date, identified_date

),

recomputed as (

    select
        coalesce(event_counts.customer_id, session_counts.customer_id) as customer_id,
        coalesce(event_counts.activity_date, session_counts.activity_date) as activity_date,
        coalesce(event_counts.identified_date, session_counts.identified_date) as identified_date,
        {%- for name, _ in metrics + category_metrics %}
        coalesce(event_counts.{{ name }}, 0) as {{ name }},
        {%- endfor %}
        coalesce(session_counts.sessions, 0) as sessions,
        coalesce(session_counts.abandoned_carts, 0) as abandoned_carts,
        coalesce(event_counts.revenue, 0) as revenue
    from event_counts
    full outer join session_counts
        on event_counts.customer_id = session_counts.customer_id
        and event_counts.activity_date = session_counts.activity_date
        and event_counts.identified_date = session_counts.identified_date

),

{% if is_incremental() %}

stored_rows as (

    select stored_cells.*
    from affected_cells
    cross join lateral (
        select * from {{ this }} as stored_cell
        where stored_cell.customer_id = affected_cells.customer_id
            and stored_cell.activity_date = affected_cells.activity_date
        offset 0  -- noqa: AM09
    ) as stored_cells

),

changes as (

    -- New or changed cells, and cells that no longer have any activity (written as zeros).
    select
        coalesce(recomputed.customer_id, stored_rows.customer_id) as customer_id,
        coalesce(recomputed.activity_date, stored_rows.activity_date) as activity_date,
        coalesce(recomputed.identified_date, stored_rows.identified_date) as identified_date,
        {%- for name in count_columns %}
        coalesce(recomputed.{{ name }}, 0) as {{ name }},
        {%- endfor %}
        coalesce(recomputed.revenue, 0) as revenue
    from recomputed
    full outer join stored_rows
        on recomputed.customer_id = stored_rows.customer_id
        and recomputed.activity_date = stored_rows.activity_date
        and recomputed.identified_date = stored_rows.identified_date
    where
        stored_rows.customer_id is null
        {%- for name in value_columns %}
        or coalesce(recomputed.{{ name }}, 0) <> stored_rows.{{ name }}
        {%- endfor %}

),

{% else %}

changes as (

    select * from recomputed

),

{% endif %}

final as (

    select
        customer_id,
        activity_date,
        identified_date,
        {%- for name in count_columns %}
        {{ name }}::bigint as {{ name }},
        {%- endfor %}
        -- numeric, not double: the features sum and subtract it, and must come out exact.
        revenue::numeric as revenue,
        '{{ run_started_at }}'::timestamptz as _updated_at
    from changes

)

select * from final
