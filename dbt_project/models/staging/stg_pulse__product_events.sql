-- Product views, cart adds and cart removes, one row per event, with the product as the event saw it.
with

events as (

    select * from {{ ref('stg_pulse__events') }}

),

final as (

    select
        event_id,
        event_name,
        user_id,
        anonymous_id,
        event_at,
        event_date,
        loaded_at,
        product_id,
        product_name,
        product_category,
        product_price,
        product_quantity
    from events
    where event_name in ('product_viewed', 'product_added', 'product_removed')

)

select * from final
