{#- The aggregates, shared by the full build (grouped) and the incremental one (per customer). -#}
{%- set activity_columns -%}
    min(event_at) as first_seen_at,
    max(event_at) as last_seen_at,
    count(*) filter (where event_name = 'product_viewed') as product_views,
    count(*) filter (where event_name = 'email_opened') as email_opens,
    count(*) filter (where event_name = 'email_clicked') as email_clicks,
    max(event_at) filter (where event_name in ('email_opened', 'email_clicked')) as last_email_engaged_at,
    -- The most viewed category; mode() takes the first in sort order among ties (alphabetical).
    mode() within group (order by product_category) filter (
        where event_name = 'product_viewed' and product_category is not null
    ) as preferred_category
{%- endset -%}
{%- set session_columns -%}
    count(*) as sessions,
    count(*) filter (where is_converted) as converted_sessions,
    count(*) filter (where has_abandoned_cart) as abandoned_carts,
    -- `source / medium` of most sessions (ties: alphabetical, as above).
    mode() within group (order by source || ' / ' || medium) as preferred_channel
{%- endset -%}
{%- set order_columns -%}
    min(ordered_at) as first_order_at,
    max(ordered_at) as last_order_at,
    count(*) as order_count,
    -- Summed as numeric: a float sum depends on the order rows are read in, which differs between the
    -- incremental and the full path (and between an incremental `orders` table and a rebuilt one).
    sum(revenue::numeric) as revenue
{%- endset -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='customer_id',
        on_schema_change='fail',
        post_hook=['delete from {{ this }} where first_seen_at is null', '{{ analyze_if_new_or_grown(this) }}'],
        indexes=[
            {'columns': ['customer_id'], 'unique': True},
            {'columns': ['_updated_at']},
        ],
    )
}}
-- One row per customer: lifetime activity, orders, sessions, preferred category and channel, email
-- engagement. Everything in `customers` that belongs to one customer alone; `customers` adds what is
-- relative to all customers (RFM quintiles) or to the end of the data (`as_of`).
--
-- Incremental: every customer a change can touch is re-aggregated from all of its events, sessions and
-- orders (through the customer indexes); the rest keep their row. Touched: the customers (now and
-- before) of events the stitching wrote since this model's last run; for visitors whose sessions were
-- rebuilt, every customer (now and before) of the events the rebuild read; and for every order id a
-- changed order event carries, every customer with an event of that order id (a resent order moves to
-- whoever sent it first).
-- A touched customer with no events left (possible only in principle: the customer's own identify
-- stays theirs) is written as a tombstone without `first_seen_at`, which replaces its stored row and is
-- then deleted by the post-hook.
with

events as (

    select * from {{ ref('int_events_stitched_to_customers') }}
    where customer_id is not null

),

sessions as (

    select * from {{ ref('sessions') }}
    where customer_id is not null

),

orders as (

    select * from {{ ref('orders') }}

),

{% if is_incremental() %}

-- The tables are read again below instead of through the import CTEs, so every read reaches their
-- indexes (`_updated_at`, visitor and time, order id, customer and day).
changed_events as (

    select
        customer_id,
        replaced_customer_id,
        event_name,
        coalesce(order_id, event_id) as order_id
    from {{ ref('int_events_stitched_to_customers') }}
    where _updated_at > {{ updated_since(this) }}

),

resessioned_events as (

    -- See macros/resessioned_events.sql.
    {{ resessioned_events() }}

),

changed_order_ids as (

    select distinct order_id from changed_events
    where event_name = 'order_completed'

),

order_id_events as (

    -- Who sent an event of a changed order id; see macros/order_events_of.sql.
    {{ order_events_of('changed_order_ids') }}

),

affected_customers as (

    select customer_id from changed_events
    union
    select replaced_customer_id from changed_events
    union
    select customer_id from resessioned_events
    union
    select replaced_customer_id from resessioned_events
    union
    select customer_id from order_id_events

),

affected as (

    select customer_id from affected_customers
    where customer_id is not null

),

{% endif %}

{% if is_incremental() %}

-- Per affected customer, through the customer indexes (a lateral lookup each: the planner cannot know
-- how few customers a run touches, and would otherwise scan every event and session). The import CTEs
-- are used once each, so PostgreSQL inlines them and the lookups reach the tables' indexes. One row per
-- customer from one lateral aggregate per table (an aggregate without `group by` returns its row even
-- when the customer has none): no join between per-table results, which the planner, expecting a few
-- dozen customers, would make a nested loop over all of them (3,000 x 3,000 comparisons on a 1% day).
customer_totals as (

    select
        affected.customer_id,
        customer_events.*,
        customer_sessions.*,
        customer_orders.*
    from affected
    cross join lateral (
        select {{ activity_columns }}
        from events
        where events.customer_id = affected.customer_id
    ) as customer_events
    cross join lateral (
        select {{ session_columns }}
        from sessions
        where sessions.customer_id = affected.customer_id
    ) as customer_sessions
    cross join lateral (
        select {{ order_columns }}
        from orders
        where orders.customer_id = affected.customer_id
    ) as customer_orders

),

{% else %}

activity as (

    select
        customer_id,
        {{ activity_columns }}
    from events
    group by customer_id

),

session_totals as (

    select
        customer_id as session_customer_id,
        {{ session_columns }}
    from sessions
    group by customer_id

),

order_totals as (

    select
        customer_id as order_customer_id,
        {{ order_columns }}
    from orders
    group by customer_id

),

customer_totals as (

    select
        activity.*,
        session_totals.*,
        order_totals.*
    from activity
    left join session_totals on activity.customer_id = session_totals.session_customer_id
    left join order_totals on activity.customer_id = order_totals.order_customer_id

),

{% endif %}

final as (

    select
        customer_id,
        first_seen_at,
        last_seen_at,
        first_order_at,
        last_order_at,
        coalesce(order_count, 0) as order_count,
        coalesce(revenue, 0)::double precision as revenue,
        case
            when order_count > 0 then (revenue / order_count)::double precision
        end as avg_order_value,
        preferred_category,
        preferred_channel,
        coalesce(sessions, 0) as sessions,
        coalesce(converted_sessions, 0) as converted_sessions,
        coalesce(abandoned_carts, 0) as abandoned_carts,
        coalesce(product_views, 0) as product_views,
        coalesce(email_opens, 0) as email_opens,
        coalesce(email_clicks, 0) as email_clicks,
        case when email_opens > 0 then email_clicks::double precision / email_opens end
            as email_click_rate,
        last_email_engaged_at,
        '{{ run_started_at }}'::timestamptz as _updated_at
    from customer_totals

)

select * from final
