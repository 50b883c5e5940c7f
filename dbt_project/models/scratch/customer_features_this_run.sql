-- The customers whose customer_features snapshots this run recomputes, each from the first snapshot that
-- changes: where a daily cell changed since the mart's last build (a late event of any age corrects
-- exactly the snapshots it belongs to), from the first snapshot that cell reaches; and every stored
-- customer from the first new day of data. On a full build nothing is stored: every customer, from the
-- first snapshot their activity reaches.
{%- set stored = stored_rows('customer_features') %}

with

stored_days as (

    select max(snapshot_date) as last_snapshot_on
    from {{ stored }} as stored_rows

),

reasons as (

    select
        customer_id,
        greatest(activity_date, identified_date) + 1 as recompute_from
    from {{ ref('int_customer_activity_aggregated_to_days') }}
    where _updated_at > {{ updated_since(stored) }}
    union all
    -- New days of data: every known customer gets the new snapshots.
    select
        stored_rows.customer_id,
        stored_rows.snapshot_date + 1 as recompute_from
    from {{ stored }} as stored_rows
    where stored_rows.snapshot_date = (select stored_days.last_snapshot_on from stored_days)

),

final as (

    select
        customer_id,
        min(recompute_from) as recompute_from
    from reasons
    group by customer_id

)

select * from final
