-- Each customer's latest consent per category (Segment's context.consent.categoryPreferences): what
-- activation syncs check before sending anyone anywhere. Only events with a userId count: a choice made
-- on an anonymous device is attributed once the visitor signs in and the consent is sent again (reading
-- the identity graph here would make this small model depend on the whole stitching chain).

with

preferences as (

    select * from {{ ref('stg_pulse__consent_preferences') }}

),

final as (

    select distinct on (user_id, category)
        user_id as customer_id,
        category,
        is_granted,
        event_at as consented_at,
        event_id
    from preferences
    where user_id is not null
    order by user_id asc, category asc, event_at desc, event_id desc

)

select * from final
