-- Every accepted event, typed: one row per messageId, names normalised, times in UTC, the fields the
-- marts use pulled out of the JSON. The base of the other staging models.
{#- `previous_id` (alias events' previousId) is a column once the loader stores it; until then it is read
    from the payload, so this model works against either shape of raw.events. -#}
{%- set raw_columns = [] -%}
{%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(source('pulse', 'events')) -%}
        {%- do raw_columns.append(column.name | lower) -%}
    {%- endfor -%}
{%- endif %}

with

source as (

    select
        *,
        ctid as row_locator,
        {% if 'previous_id' in raw_columns -%}
            nullif(trim(previous_id), '') as previous_id_column
        {%- else -%}
            null::text as previous_id_column
        {%- endif %}
    from {{ source('pulse', 'events') }}

),

deduplicated as (

    -- The first load of a messageId wins. Written as an anti-join (not a window) so that filters on
    -- `loaded_at` in incremental models reach the raw table's index.
    select source.*
    from source
    where not exists (
            select 1
            from {{ source('pulse', 'events') }} as earlier
            where
                earlier.event_id = source.event_id
                and (
                    earlier.loaded_at < source.loaded_at
                    or (earlier.loaded_at = source.loaded_at and earlier.ctid < source.row_locator)
                )
        )

),

final as (

    select
        event_id,
        lower(event_type) as event_type,
        {{ normalise_event_name('event_name') }} as event_name,
        nullif(trim(user_id), '') as user_id,
        nullif(trim(anonymous_id), '') as anonymous_id,
        coalesce(
            previous_id_column,
            nullif(trim(properties ->> 'previousId'), ''),
            nullif(trim(context ->> 'previousId'), '')
        ) as previous_id,
        event_at,
        {{ utc_date('event_at') }} as event_date,
        received_at,
        loaded_at,
        properties ->> 'product_id' as product_id,
        properties ->> 'name' as product_name,
        nullif(lower(trim(properties ->> 'category')), '') as product_category,
        {{ json_number("properties -> 'price'") }} as product_price,
        coalesce({{ json_number("properties -> 'quantity'") }}, 1) as product_quantity,
        properties ->> 'order_id' as order_id,
        coalesce(
            {{ json_number("properties -> 'revenue'") }}, {{ json_number("properties -> 'total'") }}
        ) as order_revenue,
        upper(properties ->> 'currency') as currency,
        case
            when jsonb_typeof(properties -> 'products') = 'array' then properties -> 'products'
        end as order_products,
        coalesce(context -> 'page' ->> 'url', properties ->> 'url') as page_url,
        coalesce(properties ->> 'path', context -> 'page' ->> 'path') as page_path,
        nullif(coalesce(context -> 'page' ->> 'referrer', properties ->> 'referrer'), '') as page_referrer,
        nullif(lower(context -> 'campaign' ->> 'source'), '') as utm_source,
        nullif(lower(context -> 'campaign' ->> 'medium'), '') as utm_medium,
        nullif(context -> 'campaign' ->> 'name', '') as utm_campaign,
        nullif(lower(context -> 'device' ->> 'type'), '') as device_type,
        properties ->> 'campaign_id' as email_campaign_id,
        traits ->> 'email_sha256' as email_sha256,
        properties,
        traits,
        context
    from deduplicated

)

select * from final
