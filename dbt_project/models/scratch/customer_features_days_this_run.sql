-- The snapshot days customer_features recomputes this run (one row): from the first day any customer's
-- snapshots change (see customer_features_this_run) to the last day of data, the day after the newest
-- day a daily cell became known (through the index), but never past the day after the newest load: an
-- event dated years ahead (a broken clock) must not make every customer a snapshot per day up to it.

with

final as (

    select
        (select min(this_run.recompute_from) from {{ ref('customer_features_this_run') }} as this_run)
            as first_snapshot_on,
        least(
            (select max(cell.identified_date) + 1 from {{ ref('int_customer_activity_aggregated_to_days') }} as cell),
            (select {{ utc_date('max(stitched.loaded_at)') }} + 1
                from {{ ref('int_events_stitched_to_customers') }} as stitched)
        ) as last_snapshot_on

)

select * from final
