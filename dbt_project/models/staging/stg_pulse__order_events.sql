-- `Order Completed` events, one row per event (a resent order is deduplicated in the orders mart).
with

events as (

    select * from {{ ref('stg_pulse__events') }}

),

final as (

    select
        event_id,
        coalesce(order_id, event_id) as order_id,
        user_id,
        anonymous_id,
        event_at as ordered_at,
        loaded_at,
        coalesce(order_revenue, 0) as revenue,
        currency,
        order_products
    from events
    where event_name = 'order_completed'

)

select * from final
