-- Each device (anonymous_id) belongs to the first customer that signed in on it.
-- (Point-in-time stitching, where a snapshot only sees links known before it, comes with the identity graph.)
with

events as (

    select * from {{ ref('stg_pulse__events') }}

),

links as (

    select
        anonymous_id,
        user_id as customer_id,
        event_at,
        row_number() over (partition by anonymous_id order by event_at, event_id) as link_number
    from events
    where anonymous_id is not null and user_id is not null

),

final as (

    select
        anonymous_id,
        customer_id,
        event_at as linked_at
    from links
    where link_number = 1

)

select * from final
