-- One row per customer: lifetime activity, orders, preferences, email engagement and RFM, as of the end
-- of the data (`as_of`: midnight after the last day with events, the same time as the latest
-- customer_features snapshot; never now(), so a rebuild gives the same answer).
with

events as (

    select * from {{ ref('int_events_stitched_to_customers') }}
    where customer_id is not null

),

sessions as (

    select * from {{ ref('sessions') }}
    where customer_id is not null

),

orders as (

    select * from {{ ref('orders') }}

),

bounds as (

    select ((max(event_date) + 1)::timestamp at time zone 'UTC') as as_of from events

),

activity as (

    select
        customer_id,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at,
        count(*) filter (where event_name = 'product_viewed') as product_views,
        count(*) filter (where event_name = 'email_opened') as email_opens,
        count(*) filter (where event_name = 'email_clicked') as email_clicks,
        max(event_at) filter (where event_name in ('email_opened', 'email_clicked')) as last_email_engaged_at
    from events
    group by customer_id

),

category_views as (

    select
        customer_id,
        product_category,
        row_number() over (
            partition by customer_id order by count(*) desc, product_category
        ) as category_rank
    from events
    where event_name = 'product_viewed' and product_category is not null
    group by customer_id, product_category

),

channels as (

    select
        customer_id,
        source || ' / ' || medium as channel,
        row_number() over (
            partition by customer_id order by count(*) desc, source || ' / ' || medium
        ) as channel_rank
    from sessions
    group by customer_id, source, medium

),

session_totals as (

    select
        customer_id,
        count(*) as sessions,
        count(*) filter (where is_converted) as converted_sessions,
        count(*) filter (where has_abandoned_cart) as abandoned_carts
    from sessions
    group by customer_id

),

order_totals as (

    select
        customer_id,
        min(ordered_at) as first_order_at,
        max(ordered_at) as last_order_at,
        count(*) as order_count,
        sum(revenue) as revenue
    from orders
    group by customer_id

),

joined as (

    select
        activity.customer_id,
        activity.first_seen_at,
        activity.last_seen_at,
        order_totals.first_order_at,
        order_totals.last_order_at,
        coalesce(order_totals.order_count, 0) as order_count,
        coalesce(order_totals.revenue, 0)::double precision as revenue,
        case
            when order_totals.order_count > 0 then (order_totals.revenue / order_totals.order_count)::double precision
        end as avg_order_value,
        extract(day from bounds.as_of - order_totals.last_order_at)::int as days_since_last_order,
        category_views.product_category as preferred_category,
        channels.channel as preferred_channel,
        coalesce(session_totals.sessions, 0) as sessions,
        coalesce(session_totals.converted_sessions, 0) as converted_sessions,
        coalesce(session_totals.abandoned_carts, 0) as abandoned_carts,
        activity.product_views,
        activity.email_opens,
        activity.email_clicks,
        case when activity.email_opens > 0 then activity.email_clicks::double precision / activity.email_opens end
            as email_click_rate,
        activity.last_email_engaged_at,
        bounds.as_of
    from activity
    cross join bounds
    left join order_totals on activity.customer_id = order_totals.customer_id
    left join session_totals on activity.customer_id = session_totals.customer_id
    left join category_views
        on activity.customer_id = category_views.customer_id and category_views.category_rank = 1
    left join channels on activity.customer_id = channels.customer_id and channels.channel_rank = 1

),

rfm_scores as (

    -- Quintiles among the customers who ordered (5 = best); ties share a score.
    select
        customer_id,
        {{ quintile_score('last_order_at') }} as rfm_recency_score,
        {{ quintile_score('order_count') }} as rfm_frequency_score,
        {{ quintile_score('revenue') }} as rfm_monetary_score
    from joined
    where order_count > 0

),

final as (

    select
        joined.*,
        rfm_scores.rfm_recency_score,
        rfm_scores.rfm_frequency_score,
        rfm_scores.rfm_monetary_score,
        case
            when rfm_scores.customer_id is null then 'prospects'
            else {{ rfm_segment(
                'rfm_scores.rfm_recency_score',
                '(rfm_scores.rfm_frequency_score + rfm_scores.rfm_monetary_score + 1) / 2'
            ) }}
        end as rfm_segment
    from joined
    left join rfm_scores on joined.customer_id = rfm_scores.customer_id

)

select * from final
