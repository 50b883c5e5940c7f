{#- The event columns carried through stitching (new events and re-stitched stored ones alike). -#}
{%- set event_columns = [
    'event_id', 'event_type', 'event_name', 'user_id', 'anonymous_id', 'event_at', 'event_date', 'loaded_at',
    'product_id', 'product_name', 'product_category', 'product_price', 'product_quantity',
    'order_id', 'order_revenue', 'currency', 'order_products',
    'page_url', 'page_path', 'page_referrer', 'utm_source', 'utm_medium', 'utm_campaign', 'device_type',
    'email_campaign_id',
] -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        post_hook='{{ analyze_if_new_or_grown(this) }}',
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['event_id'], 'unique': True},
            {'columns': ['anonymous_id']},
            {'columns': ['customer_id', 'event_date']},
            {'columns': ['visitor_key', 'event_at']},
            {'columns': ['event_date']},
            {'columns': ['_updated_at']},
            {'columns': ['loaded_at']},
            {'columns': ['order_id']},
        ],
    )
}}
-- Every event with the customer it belongs to and when that became known (point-in-time stitching).
--
-- * An event with a userId belongs to that customer, known at its own time.
-- * An anonymous event belongs to the customer its device was linked to at that moment (the identity
--   graph episode it falls in), known at its own time; an anonymous event from before the device's first
--   link (browsing before the first sign-in) belongs to the first customer that signed in on the device,
--   known only from that link's time. A snapshot at T therefore counts an event only if
--   `identified_at < T`: it never uses a link made after T.
-- * Events nobody can be linked to yet keep `customer_id` null, so a later link can claim them.
-- * An `alias` whose previousId is another user id merges that user into the alias's userId (Segment's
--   alias semantics): the old id's events (and the browsing attributed to it) belong to the new user,
--   known from the alias on (`identified_at` = the later of the two). One level: an alias of an id that
--   was itself merged is not followed further.
--
-- Incremental: new events (loaded since the last run, minus the `lookback` var) are stitched, and so are
-- the stored events of every device a new identity event touches (a late sign-in re-attributes that
-- device's earlier browsing) and of every id a new alias merges. Only rows that are new or whose
-- attribution changed are written; their `_updated_at` tells the downstream models what to recompute,
-- and `replaced_customer_id` (the customer a re-attributed row had before) which customer lost them.
with

events as (

    select * from {{ ref('stg_pulse__events') }}

),

-- The identity graph, imported once per use: PostgreSQL inlines a CTE used once, so each join below is
-- planned against the table, its statistics and its index (a shared, materialized CTE was re-scanned
-- once per event).
episodes as (

    select * from {{ ref('int_identity_graph') }}

),

first_episodes as (

    select * from {{ ref('int_identity_graph') }}
    where episode_number = 1

),

user_merges as (

    -- alias previousId -> userId: the first episode of the previous id, when an alias opened it. (For an
    -- anonymous previousId this maps a device id, which no event has as its customer: harmless.)
    select
        anonymous_id as merged_id,
        customer_id as merged_into,
        valid_from as merged_at
    from {{ ref('int_identity_graph') }}
    where episode_number = 1 and first_link_source = 'alias'

),

{% if is_incremental() %}

new_events as (

    select * from events
    where loaded_at > {{ loaded_since(this) }}

),

relinked_devices as (

    select anonymous_id as device_id from new_events
    where (event_type in ('identify', 'alias') or event_name in ('signed_in', 'signed_up'))
        and anonymous_id is not null
    union
    select previous_id from new_events
    where event_type = 'alias' and previous_id is not null

),

merged_ids as (

    -- Ids a new alias merges into another user: the events stored as theirs move to that user.
    select previous_id as merged_id from new_events
    where event_type = 'alias' and previous_id is not null

),

relinked_rows as (

    -- Stored events whose attribution may change: anonymous browsing on a relinked device, and the
    -- events of merged ids. Every read of the stored table in the incremental path is a lateral lookup
    -- through an index (`offset 0` keeps PostgreSQL from flattening it into a join it may plan as a scan
    -- of the whole table when its estimates are off): the work is proportional to the new events.
    select stored_rows.event_id
    from relinked_devices
    cross join lateral (
        select device_rows.event_id
        from {{ this }} as device_rows
        where device_rows.anonymous_id = relinked_devices.device_id and device_rows.user_id is null
        offset 0  -- noqa: AM09
    ) as stored_rows
    union
    select stored_rows.event_id
    from merged_ids
    cross join lateral (
        select merged_rows.event_id
        from {{ this }} as merged_rows
        where merged_rows.customer_id = merged_ids.merged_id
        offset 0  -- noqa: AM09
    ) as stored_rows

),

candidates as (

    select
        {%- for column in event_columns %}
        {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from new_events

    union all

    select
        {%- for column in event_columns %}
        stored_rows.{{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from relinked_rows
    cross join lateral (
        select * from {{ this }} as relinked_row
        where relinked_row.event_id = relinked_rows.event_id
        offset 0  -- noqa: AM09
    ) as stored_rows
    where relinked_rows.event_id not in (select new_events.event_id from new_events)

),

{% else %}

candidates as (

    select
        {%- for column in event_columns %}
        {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from events

),

{% endif %}

anonymous_attribution as (

    -- For each anonymous-only event: the episode it falls in, else the device's first episode.
    select
        candidates.event_id,
        coalesce(current_episode.customer_id, first_episodes.customer_id) as customer_id,
        case
            when current_episode.customer_id is not null then candidates.event_at
            else first_episodes.valid_from
        end as identified_at
    from candidates
    left join episodes as current_episode
        on candidates.anonymous_id = current_episode.anonymous_id
        and candidates.event_at >= current_episode.valid_from
        and (current_episode.valid_to is null or candidates.event_at < current_episode.valid_to)
    left join first_episodes
        on candidates.anonymous_id = first_episodes.anonymous_id
    where candidates.user_id is null

),

attributed as (

    select
        candidates.*,
        coalesce(candidates.anonymous_id, 'user:' || candidates.user_id) as visitor_key,
        coalesce(candidates.user_id, anonymous_attribution.customer_id) as attributed_customer_id,
        case
            when candidates.user_id is not null then candidates.event_at
            else anonymous_attribution.identified_at
        end as attributed_at
    from candidates
    left join anonymous_attribution on candidates.event_id = anonymous_attribution.event_id

),

stitched as (

    select
        attributed.*,
        coalesce(user_merges.merged_into, attributed.attributed_customer_id) as customer_id,
        case
            when user_merges.merged_into is not null then greatest(attributed.attributed_at, user_merges.merged_at)
            else attributed.attributed_at
        end as identified_at
    from attributed
    left join user_merges on attributed.attributed_customer_id = user_merges.merged_id

),

final as (

    select
        stitched.event_id,
        stitched.event_type,
        stitched.event_name,
        stitched.visitor_key,
        stitched.user_id,
        stitched.anonymous_id,
        stitched.customer_id,
        stitched.event_at,
        stitched.event_date,
        stitched.identified_at,
        {{ utc_date('stitched.identified_at') }} as identified_date,
        stitched.loaded_at,
        stitched.product_id,
        stitched.product_name,
        stitched.product_category,
        stitched.product_price,
        stitched.product_quantity,
        stitched.order_id,
        stitched.order_revenue,
        stitched.currency,
        stitched.order_products,
        stitched.page_url,
        stitched.page_path,
        stitched.page_referrer,
        stitched.utm_source,
        stitched.utm_medium,
        stitched.utm_campaign,
        stitched.device_type,
        stitched.email_campaign_id,
        {% if is_incremental() %}stored_rows.customer_id{% else %}null::text{% endif %} as replaced_customer_id,
        '{{ run_started_at }}'::timestamptz as _updated_at
    from stitched
    {% if is_incremental() %}
        left join lateral (
            select
                stored_row.event_id,
                stored_row.customer_id,
                stored_row.identified_at
            from {{ this }} as stored_row
            where stored_row.event_id = stitched.event_id
            offset 0  -- noqa: AM09
        ) as stored_rows on true
        where stored_rows.event_id is null
            or stored_rows.customer_id is distinct from stitched.customer_id
            or stored_rows.identified_at is distinct from stitched.identified_at
    {% endif %}

)

select * from final
