with

source as (

    select * from {{ source('pulse', 'events') }}

),

deduplicated as (

    select
        *,
        row_number() over (partition by event_id order by loaded_at) as copy_number
    from source

),

final as (

    select
        event_id,
        event_type,
        event_name,
        nullif(user_id, '') as user_id,
        nullif(anonymous_id, '') as anonymous_id,
        event_at,
        (event_at at time zone 'UTC')::date as event_date,
        received_at,
        loaded_at,
        properties ->> 'product_id' as product_id,
        lower(properties ->> 'category') as product_category,
        case
            when jsonb_typeof(properties -> 'price') = 'number'
                then (properties ->> 'price')::numeric
        end as product_price,
        properties ->> 'order_id' as order_id,
        case
            when jsonb_typeof(properties -> 'revenue') = 'number'
                then (properties ->> 'revenue')::numeric
            when jsonb_typeof(properties -> 'total') = 'number'
                then (properties ->> 'total')::numeric
        end as order_revenue,
        context -> 'campaign' ->> 'source' as utm_source,
        context -> 'campaign' ->> 'medium' as utm_medium,
        context -> 'device' ->> 'type' as device_type,
        properties,
        traits
    from deduplicated
    where copy_number = 1

)

select * from final
