-- Product categories as seen in events, with their products' engagement and sales.
with

products as (

    select * from {{ ref('products') }}

),

final as (

    select
        product_category,
        count(*) as products,
        sum(views) as views,
        sum(cart_adds) as cart_adds,
        sum(orders) as orders,
        -- As numeric (exact, whatever order the products are read in), back to the products' type.
        sum(units_sold::numeric)::double precision as units_sold,
        sum(revenue::numeric)::double precision as revenue
    from products
    group by product_category

)

select * from final
