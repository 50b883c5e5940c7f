{#- Counts everyone's events and names no one: `pulse forget` empties it (meta forget: recompute). -#}
{%- set is_product_event -%}
    event_name in ('product_viewed', 'product_added', 'product_removed') and product_id is not null
{%- endset -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['product_id', 'activity_date'],
        meta={'forget': 'recompute'},
        post_hook='{{ analyze_if_new_or_grown(this) }}',
        on_schema_change='fail',
        indexes=[
            {'columns': ['product_id', 'activity_date'], 'unique': True},
            {'columns': ['_updated_at']},
        ],
    )
}}
-- A product's engagement per UTC day: views, cart adds and removes, its first and last event, and the
-- latest name, category and price seen that day with the time they were seen. `products` adds the days
-- up, so a daily run reads one day of events instead of all of them.
--
-- Incremental: every day with a product event loaded since this model's last run (minus the `lookback`
-- var, as the stitching reads them) is recomputed from that day's events (through the stitched table's
-- day index). Re-stitching moves events between customers, never between products or days, so it
-- changes no cell (which is why this model follows `loaded_at`, not the stitching's `_updated_at`).
-- Events leave only when `pulse forget` deletes them, and it empties this table: the next run
-- recomputes every day.
{#- The product events to aggregate: those of the changed days, or all of them. Written once and rendered
    twice below instead of shared: a CTE read twice is materialized (written out whole on a full build), one
    read once is planned into its query. -#}
{%- set product_events -%}
{%- if is_incremental() %}
    -- The product events of those days, through the stitched table's day index (`offset 0` keeps the
    -- lookup from being flattened into a join PostgreSQL may plan as a scan of the whole table).
    select day_events.*
    from changed_days
    cross join lateral (
        select * from {{ ref('int_events_stitched_to_customers') }}
        where event_date = changed_days.event_date and {{ is_product_event }}
        offset 0  -- noqa: AM09
    ) as day_events
{%- else %}
    select * from {{ ref('int_events_stitched_to_customers') }}
    where {{ is_product_event }}
{%- endif %}
{%- endset %}
with

{% if is_incremental() %}

-- Read inside `product_events`, which the linter renders on its own: hence the noqa.
changed_days as (  -- noqa: ST03

    select distinct event_date
    from {{ ref('int_events_stitched_to_customers') }}
    where loaded_at > {{ loaded_since(this) }} and {{ is_product_event }}

),

{% endif %}

events as (

{{ product_events }}

),

attribute_events as (

{{ product_events }}

),

day_cells as (

    -- One hashed pass (no sort): counts, and when each attribute was last seen that day.
    select
        product_id,
        event_date as activity_date,
        count(*) filter (where event_name = 'product_viewed') as views,
        count(*) filter (where event_name = 'product_added') as cart_adds,
        count(*) filter (where event_name = 'product_removed') as cart_removes,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        max(loaded_at) as loaded_at,
        max(event_at) filter (where product_name is not null) as name_seen_at,
        max(event_at) filter (where product_category is not null) as category_seen_at,
        max(event_at) filter (where product_price is not null) as price_seen_at
    from events
    group by product_id, event_date

),

latest_attributes as (

    -- The name, category and price of the day's newest event carrying each (ties: the smallest event
    -- id), found by joining back on the times above.
    select
        day_cells.product_id,
        day_cells.activity_date,
        (array_agg(attribute_events.product_name order by attribute_events.event_id) filter (
            where attribute_events.event_at = day_cells.name_seen_at and attribute_events.product_name is not null
        ))[1] as product_name,
        (array_agg(attribute_events.product_category order by attribute_events.event_id) filter (
            where attribute_events.event_at = day_cells.category_seen_at
            and attribute_events.product_category is not null
        ))[1] as product_category,
        (array_agg(attribute_events.product_price order by attribute_events.event_id) filter (
            where attribute_events.event_at = day_cells.price_seen_at and attribute_events.product_price is not null
        ))[1] as product_price
    from day_cells
    inner join attribute_events
        on day_cells.product_id = attribute_events.product_id
        and day_cells.activity_date = attribute_events.event_date
        and attribute_events.event_at in (
            day_cells.name_seen_at, day_cells.category_seen_at, day_cells.price_seen_at
        )
    group by day_cells.product_id, day_cells.activity_date

),

final as (

    select
        day_cells.product_id,
        day_cells.activity_date,
        day_cells.views,
        day_cells.cart_adds,
        day_cells.cart_removes,
        day_cells.first_seen_at,
        day_cells.last_seen_at,
        day_cells.loaded_at,
        day_cells.name_seen_at,
        latest_attributes.product_name,
        day_cells.category_seen_at,
        latest_attributes.product_category,
        day_cells.price_seen_at,
        latest_attributes.product_price,
        '{{ run_started_at }}'::timestamptz as _updated_at
    from day_cells
    left join latest_attributes
        on day_cells.product_id = latest_attributes.product_id
        and day_cells.activity_date = latest_attributes.activity_date

)

select * from final
