-- One row per customer per UTC day with activity: the building block for windowed features.
with

events as (

    select * from {{ ref('int_events_stitched_to_customers') }}

),

final as (

    select
        customer_id,
        event_date as activity_date,
        count(*) as events,
        count(*) filter (where event_type = 'page') as page_views,
        count(*) filter (where event_name = 'product_viewed') as product_views,
        count(*) filter (where event_name = 'product_added') as cart_adds,
        count(*) filter (where event_name = 'product_removed') as cart_removes,
        count(*) filter (where event_name = 'checkout_started') as checkouts,
        count(distinct order_id) filter (where event_name = 'order_completed') as orders,
        coalesce(sum(order_revenue) filter (where event_name = 'order_completed'), 0) as revenue,
        count(*) filter (where event_name = 'email_opened') as email_opens,
        count(*) filter (where event_name = 'email_clicked') as email_clicks
    from events
    group by 1, 2

)

select * from final
