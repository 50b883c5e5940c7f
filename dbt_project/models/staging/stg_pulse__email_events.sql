-- Email engagement events (opens and clicks), with the campaign they belong to.
with

events as (

    select * from {{ ref('stg_pulse__events') }}

),

final as (

    select
        event_id,
        event_name,
        user_id,
        anonymous_id,
        event_at,
        loaded_at,
        coalesce(email_campaign_id, utm_campaign) as email_campaign_id
    from events
    where event_name in ('email_opened', 'email_clicked')

)

select * from final
