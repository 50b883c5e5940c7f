{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='order_id',
        on_schema_change='fail',
        post_hook=[
            "{{ delete_lines_of_rewritten_orders(this, ref('orders')) }}",
            '{{ analyze_if_new_or_grown(this) }}',
        ],
        indexes=[
            {'columns': ['order_line_id'], 'unique': True},
            {'columns': ['order_id']},
        ],
    )
}}
-- One row per product line of an order (the `products` array of `Order Completed`).
--
-- Incremental: the lines of every order `orders` wrote since this model's last run replace that order's
-- stored lines; the post-hook then deletes the lines of orders that are gone or were rewritten without
-- them (see macros/delete_lines_of_rewritten_orders.sql).
with

orders as (

    select * from {{ ref('orders') }}
    {%- if is_incremental() %}
    where _updated_at > {{ updated_since(this) }}
    {%- endif %}

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
        )::double precision as line_revenue,
        '{{ run_started_at }}'::timestamptz as _updated_at
    from lines

)

select * from final
