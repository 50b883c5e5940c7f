{#-
    The stitched events of every visitor whose sessions the `sessions` model rebuilt since the calling
    incremental model last ran, from where each rebuild started: the replaced sessions were made of these
    events, so the customers (now, and before a re-attribution) and days they touched are among these.
    Shared by the per-day and the per-customer aggregates, which both recompute what a rebuilt session
    can touch. Each visitor's events are a lateral lookup through the stitched table's (visitor, time)
    index (`offset 0` keeps PostgreSQL from flattening it into a join it may plan as a scan of the whole
    table when its estimates are off).
-#}
{% macro resessioned_events() %}
    select
        resessioned_visitors.visitor_key,
        visitor_events.customer_id,
        visitor_events.replaced_customer_id,
        visitor_events.event_date
    from (
        select
            visitor_key,
            min(_replace_from) as replace_from
        from {{ ref('sessions') }}
        where _updated_at > {{ updated_since(this) }}
        group by visitor_key
    ) as resessioned_visitors
    cross join lateral (
        select
            stitched.customer_id,
            stitched.replaced_customer_id,
            stitched.event_date
        from {{ ref('int_events_stitched_to_customers') }} as stitched
        where stitched.visitor_key = resessioned_visitors.visitor_key
            and stitched.event_at >= resessioned_visitors.replace_from
        offset 0
    ) as visitor_events
{% endmacro %}
