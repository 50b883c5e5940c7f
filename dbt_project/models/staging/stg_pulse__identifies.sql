-- The events that tie identifiers together: `identify`, `alias` and sign-ins. The identity graph is
-- built from these only.
with

events as (

    select * from {{ ref('stg_pulse__events') }}

),

final as (

    select
        event_id,
        event_type,
        event_name,
        user_id,
        anonymous_id,
        previous_id,
        event_at,
        loaded_at,
        email_sha256
    from events
    where event_type in ('identify', 'alias') or event_name in ('signed_in', 'signed_up')

)

select * from final
