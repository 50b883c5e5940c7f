{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='order_id',
        on_schema_change='fail',
        post_hook=['delete from {{ this }} where customer_id is null', '{{ analyze_if_new_or_grown(this) }}'],
        indexes=[
            {'columns': ['order_id'], 'unique': True},
            {'columns': ['customer_id']},
            {'columns': ['_updated_at']},
        ],
    )
}}
-- One row per order, attributed to its (stitched) customer. A resent `Order Completed` (same order id)
-- counts once: the first one.
--
-- Incremental: an order id is changed when the stitching wrote one of its order events since this
-- model's last run (a new order, a resend, a late sign-in or device hand-over that moves it to another
-- customer). Every customer that holds a changed order now or held it before gets all of its orders
-- recomputed and renumbered (`customer_order_number`); a stored order such a customer no longer holds
-- is written as a tombstone without `customer_id`, which replaces its stored row and is then deleted by
-- the post-hook. Everything is read through the stitched table's order id, event id and customer
-- indexes.
with

{% if is_incremental() %}

changed_order_ids as (

    select distinct coalesce(order_id, event_id) as order_id
    from {{ ref('int_events_stitched_to_customers') }}
    where _updated_at > {{ updated_since(this) }}
        and event_name = 'order_completed'

),

changed_order_events as (

    -- Who sent an event of a changed order id; see macros/order_events_of.sql.
    {{ order_events_of('changed_order_ids') }}

),

affected_customers as (

    select customer_id from changed_order_events
    where customer_id is not null
    union
    select stored_orders.customer_id
    from {{ this }} as stored_orders
    inner join changed_order_ids on stored_orders.order_id = changed_order_ids.order_id

),

candidate_order_ids as (

    -- Every order id an affected customer has an event of (the orders it may hold), and the changed ones.
    select coalesce(customer_events.order_id, customer_events.event_id) as order_id
    from affected_customers
    cross join lateral (
        select
            stitched.order_id,
            stitched.event_id
        from {{ ref('int_events_stitched_to_customers') }} as stitched
        where stitched.customer_id = affected_customers.customer_id
            and stitched.event_name = 'order_completed'
    ) as customer_events
    union
    select order_id from changed_order_ids

),

order_events as (

    -- All events of the candidate orders, whoever sent them: the first one decides the order's customer.
    {{ order_events_of('candidate_order_ids', 'stitched.*') }}

),

{% else %}

order_events as (

    select * from {{ ref('int_events_stitched_to_customers') }}
    where event_name = 'order_completed'

),

{% endif %}

numbered_order_events as (

    select
        coalesce(order_id, event_id) as order_id,
        event_id,
        customer_id,
        event_at as ordered_at,
        identified_at,
        coalesce(order_revenue, 0) as revenue,
        currency,
        order_products,
        row_number() over (
            partition by coalesce(order_id, event_id) order by event_at, event_id
        ) as order_event_number
    from order_events
    where customer_id is not null

),

first_order_events as (

    select * from numbered_order_events
    where order_event_number = 1
    {%- if is_incremental() %}
        -- Only the affected customers' orders are numbered here from all of their orders.
        and customer_id in (select affected_customers.customer_id from affected_customers)
    {%- endif %}

),

{% if is_incremental() %}

tombstones as (

    -- Stored orders of the affected customers (or changed ids) that no affected customer holds now.
    select
        stored_orders.order_id,
        stored_orders.order_event_id,
        null::text as customer_id,
        stored_orders.ordered_at,
        stored_orders.ordered_date,
        stored_orders.identified_at,
        stored_orders.revenue,
        stored_orders.currency,
        stored_orders.line_count,
        stored_orders.customer_order_number,
        stored_orders.order_products,
        '{{ run_started_at }}'::timestamptz as _updated_at
    from {{ this }} as stored_orders
    where (
        stored_orders.customer_id in (select affected_customers.customer_id from affected_customers)
        or stored_orders.order_id in (select changed_order_ids.order_id from changed_order_ids)
    )
    and stored_orders.order_id not in (select first_order_events.order_id from first_order_events)

),

{% endif %}

final as (

    select
        order_id,
        event_id as order_event_id,
        customer_id,
        ordered_at,
        {{ utc_date('ordered_at') }} as ordered_date,
        identified_at,
        revenue::double precision as revenue,
        currency,
        coalesce(jsonb_array_length(order_products), 0) as line_count,
        row_number() over (partition by customer_id order by ordered_at, order_id) as customer_order_number,
        order_products,
        '{{ run_started_at }}'::timestamptz as _updated_at
    from first_order_events
    {%- if is_incremental() %}
    union all
    select * from tombstones
    {%- endif %}

)

select * from final
