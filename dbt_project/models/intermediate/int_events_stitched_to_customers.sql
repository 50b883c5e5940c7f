-- Every event gets its customer_id, including anonymous browsing before the first sign-in on that device.
with

events as (

    select * from {{ ref('stg_pulse__events') }}

),

identities as (

    select * from {{ ref('int_anonymous_ids_mapped_to_customers') }}

),

final as (

    select
        events.*,
        coalesce(events.user_id, identities.customer_id) as customer_id
    from events
    left join identities on events.anonymous_id = identities.anonymous_id

)

select * from final
where customer_id is not null
