{{
    config(
        materialized='table',
        indexes=[{'columns': ['anonymous_id', 'valid_from']}],
        post_hook='analyze {{ this }}',
    )
}}
-- The identity graph as episodes: which customer a device (anonymous id) belonged to, and from when.
--
-- Links come from identify, alias (previousId -> userId) and sign-in events only. Per device the links
-- are ordered in time; consecutive links to the same customer form one episode, which lasts until the
-- device is linked to someone else. A link is known from its event time on, so a snapshot at time T
-- sees exactly the episodes with `valid_from < T`.
with

identifies as (

    select * from {{ ref('stg_pulse__identifies') }}

),

links as (

    select
        anonymous_id as linked_id,
        user_id as customer_id,
        event_at as linked_at,
        event_id,
        event_name as link_source
    from identifies
    where anonymous_id is not null and user_id is not null

    union all

    -- alias: the previous id (usually the anonymous id the visitor browsed with) becomes the user's.
    select
        previous_id as linked_id,
        user_id as customer_id,
        event_at as linked_at,
        event_id,
        'alias' as link_source
    from identifies
    where event_type = 'alias' and previous_id is not null and user_id is not null
        and previous_id <> user_id

),

ordered as (

    select
        *,
        lag(customer_id) over (partition by linked_id order by linked_at, event_id) as previous_customer_id
    from links

),

episode_starts as (

    select
        linked_id,
        customer_id,
        linked_at as valid_from,
        event_id as first_link_event_id,
        link_source as first_link_source
    from ordered
    where previous_customer_id is distinct from customer_id

),

final as (

    select
        linked_id as anonymous_id,
        customer_id,
        valid_from,
        lead(valid_from) over (partition by linked_id order by valid_from, first_link_event_id) as valid_to,
        row_number() over (partition by linked_id order by valid_from, first_link_event_id)
            as episode_number,
        first_link_event_id,
        first_link_source
    from episode_starts

)

select * from final
