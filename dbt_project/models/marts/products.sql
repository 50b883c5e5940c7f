{{ config(indexes=[{'columns': ['product_id'], 'unique': True}]) }}
-- Products as seen in events: latest name, category and price, and how they were engaged with.
with

events as (

    select * from {{ ref('int_events_stitched_to_customers') }}
    where event_name in ('product_viewed', 'product_added', 'product_removed') and product_id is not null

),

attribute_events as (

    -- The same events, read a second time instead of shared: a CTE read twice is materialized (written
    -- out whole), one read once is planned into its query.
    select * from {{ ref('int_events_stitched_to_customers') }}
    where event_name in ('product_viewed', 'product_added', 'product_removed') and product_id is not null

),

order_lines as (

    select * from {{ ref('order_lines') }}
    where product_id is not null

),

engagement as (

    -- One hashed pass over the product events (no sort): counts, and when each attribute was last seen.
    select
        product_id,
        max(event_at) filter (where product_name is not null) as name_seen_at,
        max(event_at) filter (where product_category is not null) as category_seen_at,
        max(event_at) filter (where product_price is not null) as price_seen_at,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(*) filter (where event_name = 'product_viewed') as views,
        count(*) filter (where event_name = 'product_added') as cart_adds,
        count(*) filter (where event_name = 'product_removed') as cart_removes
    from events
    group by product_id

),

latest_attributes as (

    -- Latest name, category and price: those of the newest event carrying each (ties: the smallest
    -- event id), found by joining back on the times above.
    select
        engagement.product_id,
        (array_agg(attribute_events.product_name order by attribute_events.event_id) filter (
            where attribute_events.event_at = engagement.name_seen_at and attribute_events.product_name is not null
        ))[1] as product_name,
        (array_agg(attribute_events.product_category order by attribute_events.event_id) filter (
            where attribute_events.event_at = engagement.category_seen_at
            and attribute_events.product_category is not null
        ))[1] as product_category,
        (array_agg(attribute_events.product_price order by attribute_events.event_id) filter (
            where attribute_events.event_at = engagement.price_seen_at and attribute_events.product_price is not null
        ))[1] as price
    from engagement
    inner join attribute_events
        on engagement.product_id = attribute_events.product_id
        and attribute_events.event_at in (
            engagement.name_seen_at, engagement.category_seen_at, engagement.price_seen_at
        )
    group by engagement.product_id

),

sales as (

    select
        product_id,
        (array_agg(product_name order by ordered_at desc) filter (where product_name is not null))[1]
            as product_name,
        (array_agg(product_category order by ordered_at desc) filter (where product_category is not null))[1]
            as product_category,
        min(ordered_at) as first_ordered_at,
        count(distinct order_id) as orders,
        sum(quantity) as units_sold,
        sum(line_revenue) as revenue
    from order_lines
    group by product_id

),

final as (

    select
        coalesce(engagement.product_id, sales.product_id) as product_id,
        coalesce(latest_attributes.product_name, sales.product_name) as product_name,
        coalesce(latest_attributes.product_category, sales.product_category, 'unknown') as product_category,
        latest_attributes.price::double precision as price,
        least(engagement.first_seen_at, sales.first_ordered_at) as first_seen_at,
        engagement.last_seen_at,
        coalesce(engagement.views, 0) as views,
        coalesce(engagement.cart_adds, 0) as cart_adds,
        coalesce(engagement.cart_removes, 0) as cart_removes,
        coalesce(sales.orders, 0) as orders,
        coalesce(sales.units_sold, 0)::double precision as units_sold,
        coalesce(sales.revenue, 0)::double precision as revenue,
        case
            when coalesce(engagement.views, 0) > 0
                then coalesce(sales.orders, 0)::double precision / engagement.views
        end as orders_per_view
    from engagement
    left join latest_attributes on engagement.product_id = latest_attributes.product_id
    full outer join sales on engagement.product_id = sales.product_id

)

select * from final
