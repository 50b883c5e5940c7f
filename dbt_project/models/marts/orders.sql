{{ config(indexes=[{'columns': ['order_id'], 'unique': True}, {'columns': ['customer_id']}]) }}
-- One row per order, attributed to its (stitched) customer. A resent `Order Completed` (same order id)
-- counts once: the first one.
with

events as (

    select * from {{ ref('int_events_stitched_to_customers') }}

),

order_events as (

    select
        coalesce(order_id, event_id) as order_id,
        event_id,
        customer_id,
        visitor_key,
        event_at as ordered_at,
        identified_at,
        coalesce(order_revenue, 0) as revenue,
        currency,
        order_products,
        row_number() over (
            partition by coalesce(order_id, event_id) order by event_at, event_id
        ) as order_event_number
    from events
    where event_name = 'order_completed' and customer_id is not null

),

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
        order_products
    from order_events
    where order_event_number = 1

)

select * from final
