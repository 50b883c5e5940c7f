with

events as (

    select * from {{ ref('int_events_stitched_to_customers') }}

),

order_events as (

    select
        coalesce(order_id, event_id) as order_id,
        customer_id,
        event_at as ordered_at,
        coalesce(order_revenue, 0) as revenue,
        row_number() over (
            partition by coalesce(order_id, event_id) order by event_at, event_id
        ) as order_event_number
    from events
    where event_name = 'order_completed'

),

final as (

    select
        order_id,
        customer_id,
        ordered_at,
        revenue
    from order_events
    where order_event_number = 1

)

select * from final
