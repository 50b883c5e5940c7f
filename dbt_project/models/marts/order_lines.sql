-- One row per product line of an order (the `products` array of `Order Completed`).
with

orders as (

    select * from {{ ref('orders') }}

),

lines as (

    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        line.ordinality::int as line_number,
        line.value as line
    from orders
    cross join lateral jsonb_array_elements(orders.order_products) with ordinality as line (value, ordinality)
    where orders.order_products is not null

),

final as (

    select
        order_id || '-' || line_number as order_line_id,
        order_id,
        customer_id,
        ordered_at,
        line_number,
        line ->> 'product_id' as product_id,
        line ->> 'name' as product_name,
        nullif(lower(trim(line ->> 'category')), '') as product_category,
        ({{ json_number("line -> 'price'") }})::double precision as price,
        coalesce({{ json_number("line -> 'quantity'") }}, 1)::double precision as quantity,
        (
            coalesce({{ json_number("line -> 'price'") }}, 0)
            * coalesce({{ json_number("line -> 'quantity'") }}, 1)
        )::double precision as line_revenue
    from lines

)

select * from final
