{{ config(indexes=[{'columns': ['product_id'], 'unique': True}]) }}
-- Products as seen in events: latest name, category and price, and how they were engaged with.
with

product_days as (

    select * from {{ ref('int_product_activity_aggregated_to_days') }}

),

order_lines as (

    select * from {{ ref('order_lines') }}
    where product_id is not null

),

engagement as (

    -- The product's days added up; its latest attributes are those of the day that saw each last.
    select
        product_id,
        (array_agg(product_name order by name_seen_at desc) filter (where product_name is not null))[1]
            as product_name,
        (array_agg(product_category order by category_seen_at desc) filter (where product_category is not null))[1]
            as product_category,
        (array_agg(product_price order by price_seen_at desc) filter (where product_price is not null))[1]
            as price,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        sum(views)::bigint as views,
        sum(cart_adds)::bigint as cart_adds,
        sum(cart_removes)::bigint as cart_removes
    from product_days
    group by product_id

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
        -- As numeric, so the result does not depend on the order the (incremental) lines are read in.
        sum(quantity::numeric) as units_sold,
        sum(line_revenue::numeric) as revenue
    from order_lines
    group by product_id

),

final as (

    select
        coalesce(engagement.product_id, sales.product_id) as product_id,
        coalesce(engagement.product_name, sales.product_name) as product_name,
        coalesce(engagement.product_category, sales.product_category, 'unknown') as product_category,
        engagement.price::double precision as price,
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
    full outer join sales on engagement.product_id = sales.product_id

)

select * from final
