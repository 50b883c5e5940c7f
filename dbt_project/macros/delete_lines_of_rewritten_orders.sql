{#-
    Post-hook of the incremental `order_lines`: delete the lines whose order is gone from `orders` (a
    tombstone) or was written after them (rewritten in this run with fewer or no lines; lines of orders
    rewritten with lines were already replaced by the delete+insert on `order_id`). Lines and orders
    written by the same run carry the same `_updated_at`, the run's start.
-#}
{% macro delete_lines_of_rewritten_orders(lines, orders) -%}
    delete from {{ lines }} as stale_lines
    where not exists (
        select 1
        from {{ orders }} as current_orders
        where current_orders.order_id = stale_lines.order_id
            and current_orders._updated_at <= stale_lines._updated_at
    )
{%- endmacro %}
