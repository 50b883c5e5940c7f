{#-
    The customer (null: anonymous) of every `Order Completed` event of the order ids in the CTE
    `order_ids` (column `order_id`): the events that name the id as `order_id`, and, for an order sent
    without one, the event whose id it is. Through the stitched table's order id and event id indexes.
    Shared by the incremental `orders` and per-customer aggregate: both recompute every customer that
    sent an event of a changed order id (a resent order belongs to whoever sent it first).
-#}
{% macro customers_of_order_ids(order_ids) %}
    select stitched.customer_id
    from {{ ref('int_events_stitched_to_customers') }} as stitched
    inner join {{ order_ids }} on stitched.order_id = {{ order_ids }}.order_id
    where stitched.event_name = 'order_completed'
    union all
    select stitched.customer_id
    from {{ ref('int_events_stitched_to_customers') }} as stitched
    inner join {{ order_ids }} on stitched.event_id = {{ order_ids }}.order_id
    where stitched.event_name = 'order_completed' and stitched.order_id is null
{% endmacro %}
