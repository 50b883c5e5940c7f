{#-
    What `pulse forget` runs on dbt's tables before it deletes a person's events, in the same transaction
    (the events' ids are its bind parameter `:events`). Rendered by `dbt compile --inline` so that dbt's
    bookkeeping columns and the models concerned stay with dbt; one statement per line, `;`-terminated.

    - Other senders' events of the orders those events belong to get a new `_updated_at`: an order id sent
      by several customers belongs to whoever sent it first, and the incremental `orders` and per-customer
      aggregate recompute the order ids of events stitched after their last run, so the order passes to
      its next sender, as a full rebuild would.
    - Models with `meta: {forget: recompute}` (aggregates of everyone's events that name no one) are
      emptied: the next build recomputes them without the events.
    Tables not built yet are left out.
-#}
{% macro forget_events_sql() -%}
    {%- set statements = [] -%}
    {%- set stitched = load_relation(ref('int_events_stitched_to_customers')) -%}
    {%- if stitched is not none -%}
        {%- do statements.append(
            "update " ~ stitched ~ " as shared set _updated_at = now()"
            ~ " where shared.event_name = 'order_completed' and not shared.event_id = any(:events)"
            ~ " and coalesce(shared.order_id, shared.event_id) in ("
            ~ "select coalesce(gone.order_id, gone.event_id) from " ~ stitched ~ " as gone"
            ~ " where gone.event_id = any(:events) and gone.event_name = 'order_completed')"
        ) -%}
    {%- endif -%}
    {%- for node in graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('config.meta.forget', 'equalto', 'recompute') -%}
        {%- set relation = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
        {%- if relation is not none -%}
            {%- do statements.append("delete from " ~ relation) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for statement in statements %}
{{ statement }};
    {%- endfor %}
{%- endmacro %}
