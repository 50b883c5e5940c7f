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
        product_line.line_position::int as line_number,
        product_line.line_value as line_json
    from orders
    cross join
        lateral jsonb_array_elements(orders.order_products) with ordinality as product_line (line_value, line_position)
    where orders.order_products is not null

),

final as (

    select
        order_id || '-' || line_number as order_line_id,
        order_id,
        customer_id,
        ordered_at,
        line_number,
        line_json ->> 'product_id' as product_id,
        line_json ->> 'name' as product_name,
        nullif(lower(trim(line_json ->> 'category')), '') as product_category,
        ({{ json_number("line_json -> 'price'") }})::double precision as price,
        coalesce({{ json_number("line_json -> 'quantity'") }}, 1)::double precision as quantity,
        (
            coalesce({{ json_number("line_json -> 'price'") }}, 0)
            * coalesce({{ json_number("line_json -> 'quantity'") }}, 1)
        )::double precision as line_revenue
    from lines

)

select * from final
