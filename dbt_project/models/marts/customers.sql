{{ config(indexes=[{'columns': ['customer_id'], 'unique': True}]) }}
-- One row per customer: lifetime activity, orders, preferences, email engagement and RFM, as of the end
-- of the data (`as_of`: midnight after the last day with events, the same time as the latest
-- customer_features snapshot; never now(), so a rebuild gives the same answer).
--
-- A table rebuilt on every run, but a cheap one: the per-customer aggregates are kept incrementally in
-- int_customer_activity_aggregated_to_customers; what is relative to all customers (RFM quintiles) or to
-- the end of the data (days since the last order) is computed here.
with

customer_activity as (

    select * from {{ ref('int_customer_activity_aggregated_to_customers') }}

),

events as (

    select * from {{ ref('int_events_stitched_to_customers') }}

),

bounds as (

    -- The newest day with a customer's event (a backward scan of the stitched events' day index).
    select ((max(event_date) + 1)::timestamp at time zone 'UTC') as as_of
    from events
    where customer_id is not null

),

joined as (

    select
        customer_activity.customer_id,
        customer_activity.first_seen_at,
        customer_activity.last_seen_at,
        customer_activity.first_order_at,
        customer_activity.last_order_at,
        customer_activity.order_count,
        customer_activity.revenue,
        customer_activity.avg_order_value,
        extract(day from bounds.as_of - customer_activity.last_order_at)::int as days_since_last_order,
        customer_activity.preferred_category,
        customer_activity.preferred_channel,
        customer_activity.sessions,
        customer_activity.converted_sessions,
        customer_activity.abandoned_carts,
        customer_activity.product_views,
        customer_activity.email_opens,
        customer_activity.email_clicks,
        customer_activity.email_click_rate,
        customer_activity.last_email_engaged_at,
        bounds.as_of
    from customer_activity
    cross join bounds

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
