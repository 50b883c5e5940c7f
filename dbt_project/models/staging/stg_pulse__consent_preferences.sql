-- Segment's consent object on events: one row per event and category of
-- `context.consent.categoryPreferences` ({"marketing": true, "advertising": false, ...}).
-- Values that are not JSON booleans are not a signal and are left out.

with

events as (

    select * from {{ ref('stg_pulse__events') }}

),

preferences as (

    select
        events.event_id,
        events.user_id,
        events.anonymous_id,
        events.event_at,
        events.loaded_at,
        preference.category,
        preference.granted
    from events
    cross join lateral jsonb_each(
        case
            when jsonb_typeof(events.context -> 'consent' -> 'categoryPreferences') = 'object'
                then events.context -> 'consent' -> 'categoryPreferences'
            else '{}'::jsonb
        end
    ) as preference (category, granted)
    where jsonb_typeof(preference.granted) = 'boolean'

),

final as (

    select
        event_id,
        user_id,
        anonymous_id,
        event_at,
        loaded_at,
        category,
        granted::text::boolean as is_granted
    from preferences

)

select * from final
