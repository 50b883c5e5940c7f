{#-
    `columns` of every `Order Completed` event of the order ids in the CTE `order_ids` (column
    `order_id`): the events that name the id as `order_id`, and, for an order sent without one, the event
    whose id it is (`orders` keys such an order by its event id). One lateral lookup per id through the
    stitched table's order id and event id indexes. Used by the incremental `orders` (who sent a changed
    order id; every event of the orders it recomputes) and the per-customer aggregate (who sent a changed
    order id): a resent order belongs to whoever sent it first.
-#}
{% macro order_events_of(order_ids, columns='stitched.customer_id') %}
    select order_id_events.*
    from {{ order_ids }}
    cross join lateral (
        select {{ columns }}
        from {{ ref('int_events_stitched_to_customers') }} as stitched
        where stitched.order_id = {{ order_ids }}.order_id
            and stitched.event_name = 'order_completed'
        union all
        select {{ columns }}
        from {{ ref('int_events_stitched_to_customers') }} as stitched
        where stitched.event_id = {{ order_ids }}.order_id
            and stitched.order_id is null
            and stitched.event_name = 'order_completed'
    ) as order_id_events
{% endmacro %}
