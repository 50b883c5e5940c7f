{{
    config(
        materialized='incremental',
        incremental_strategy='replace_from',
        unique_key='session_id',
        replace_key='visitor_key',
        replace_from_column='started_at',
        on_schema_change='fail',
        indexes=[
            {'columns': ['session_id'], 'unique': True},
            {'columns': ['visitor_key', 'started_at']},
            {'columns': ['customer_id', 'started_date']},
            {'columns': ['_updated_at']},
        ],
    )
}}
-- Web sessions: a visitor's (device's) site events, split where they were inactive for longer than the
-- `session_timeout` var (30 minutes). Email opens and clicks happen in a mail client, not on the site,
-- so they are not part of sessions.
--
-- Incremental: for each visitor with changed events, the sessions from the last one that started at or
-- before the earliest change are rebuilt and replace the stored_rows ones (`replace_from` strategy), so late
-- events that merge or split sessions leave no stale session behind.
with

events as (

    select * from {{ ref('int_events_stitched_to_customers') }}
    where event_name not like 'email\_%'

),

{% if is_incremental() %}

changed_visitors as (

    -- Read from the table, not the `events` CTE: a CTE used twice is materialized (a full scan), one used
    -- once is inlined, so both reads use the stitched table's indexes (`_updated_at`, visitor and time).
    select
        visitor_key,
        min(event_at) as changed_from
    from {{ ref('int_events_stitched_to_customers') }}
    where _updated_at > {{ updated_since(this) }}
        and event_name not like 'email\_%'
    group by visitor_key

),

rebuild_from as (

    select
        changed_visitors.visitor_key,
        coalesce(max(stored_rows.started_at), '-infinity'::timestamptz) as replace_from
    from changed_visitors
    left join {{ this }} as stored_rows
        on changed_visitors.visitor_key = stored_rows.visitor_key
        and changed_visitors.changed_from >= stored_rows.started_at
    group by changed_visitors.visitor_key

),

scoped as (

    select
        events.*,
        rebuild_from.replace_from
    from events
    inner join rebuild_from
        on events.visitor_key = rebuild_from.visitor_key
        and events.event_at >= rebuild_from.replace_from

),

{% else %}

scoped as (

    select
        events.*,
        '-infinity'::timestamptz as replace_from
    from events

),

{% endif %}

gaps as (

    select
        *,
        case
            when lag(event_at) over visitor_events is null then 1
            when event_at - lag(event_at) over visitor_events > interval '{{ var("session_timeout") }}' then 1
            else 0
        end as is_session_start
    from scoped
    window visitor_events as (partition by visitor_key order by event_at, event_id)

),

numbered as (

    select
        *,
        sum(is_session_start) over (
            partition by visitor_key order by event_at, event_id rows unbounded preceding
        ) as session_number
    from gaps

),

aggregated as (

    select
        visitor_key,
        session_number,
        min(replace_from) as replace_from,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        (array_agg(event_id order by event_at, event_id))[1] as first_event_id,
        -- The customer the session was first attributable to, and since when (point-in-time, as events).
        (array_agg(customer_id order by identified_at, event_at, event_id) filter (
            where customer_id is not null
        ))[1] as customer_id,
        min(identified_at) as identified_at,
        (array_agg(anonymous_id order by event_at, event_id) filter (where anonymous_id is not null))[1]
            as anonymous_id,
        (array_agg(page_path order by event_at, event_id) filter (where event_type = 'page'))[1]
            as landing_page_path,
        (array_agg(page_url order by event_at, event_id) filter (where page_url is not null))[1]
            as landing_page_url,
        (array_agg(page_referrer order by event_at, event_id) filter (where page_referrer is not null))[1]
            as referrer,
        (array_agg(utm_source order by event_at, event_id) filter (where utm_source is not null))[1]
            as utm_source,
        (array_agg(utm_medium order by event_at, event_id) filter (where utm_source is not null))[1]
            as utm_medium,
        (array_agg(utm_campaign order by event_at, event_id) filter (where utm_source is not null))[1]
            as utm_campaign,
        (array_agg(device_type order by event_at, event_id) filter (where device_type is not null))[1]
            as device_type,
        count(*) as events,
        count(*) filter (where event_type = 'page') as page_views,
        count(*) filter (where event_name = 'product_viewed') as product_views,
        count(*) filter (where event_name = 'product_added') as cart_adds,
        count(*) filter (where event_name = 'product_removed') as cart_removes,
        count(*) filter (where event_name = 'checkout_started') as checkouts,
        count(distinct coalesce(order_id, event_id)) filter (where event_name = 'order_completed') as orders,
        coalesce(sum(order_revenue) filter (where event_name = 'order_completed'), 0) as revenue
    from numbered
    group by visitor_key, session_number

),

final as (

    select
        md5(visitor_key || '|' || first_event_id) as session_id,
        visitor_key,
        customer_id,
        anonymous_id,
        started_at,
        ended_at,
        extract(epoch from ended_at - started_at)::bigint as duration_seconds,
        {{ utc_date('started_at') }} as started_date,
        identified_at,
        {{ utc_date('identified_at') }} as identified_date,
        landing_page_path,
        landing_page_url,
        referrer,
        -- Source / medium: UTM tags first, else the referring site, else direct.
        case
            when utm_source is not null then utm_source
            when referrer is not null then lower(substring(referrer from '^[a-zA-Z]+://([^/:?#]+)'))
            else 'direct'
        end as source,
        case
            when utm_source is not null then coalesce(utm_medium, '(not set)')
            when referrer is not null then 'referral'
            else '(none)'
        end as medium,
        utm_campaign as campaign,
        coalesce(device_type, 'unknown') as device_type,
        events,
        page_views,
        product_views,
        cart_adds,
        cart_removes,
        checkouts,
        orders,
        revenue,
        orders > 0 as is_converted,
        cart_adds > 0 and orders = 0 as has_abandoned_cart,
        replace_from as _replace_from,
        '{{ run_started_at }}'::timestamptz as _updated_at
    from aggregated

)

select * from final
