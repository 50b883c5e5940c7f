-- Point-in-time customer features: one row per customer per snapshot date.
-- A snapshot at `event_timestamp` (midnight UTC) uses only events from the days strictly before it, so a
-- training row never sees its own future. Feast reads this table as its offline source.
with

daily as (

    select * from {{ ref('int_customer_activity_aggregated_to_days') }}

),

bounds as (

    select max(activity_date) as last_activity_date from daily

),

first_seen as (

    select customer_id, min(activity_date) as first_activity_date
    from daily
    group by 1

),

customer_days as (

    -- Dense calendar from each customer's first active day to the last day in the data, so windows
    -- can be expressed as row ranges.
    select
        first_seen.customer_id,
        first_seen.first_activity_date,
        calendar.day::date as activity_date
    from first_seen
    cross join bounds
    cross join lateral generate_series(
        first_seen.first_activity_date, bounds.last_activity_date, interval '1 day'
    ) as calendar (day)

),

filled as (

    select
        customer_days.customer_id,
        customer_days.first_activity_date,
        customer_days.activity_date,
        coalesce(daily.events, 0) as events,
        coalesce(daily.page_views, 0) as page_views,
        coalesce(daily.product_views, 0) as product_views,
        coalesce(daily.cart_adds, 0) as cart_adds,
        coalesce(daily.cart_removes, 0) as cart_removes,
        coalesce(daily.checkouts, 0) as checkouts,
        coalesce(daily.orders, 0) as orders,
        coalesce(daily.revenue, 0) as revenue,
        coalesce(daily.email_opens, 0) as email_opens,
        coalesce(daily.email_clicks, 0) as email_clicks
    from customer_days
    left join daily
        on customer_days.customer_id = daily.customer_id
        and customer_days.activity_date = daily.activity_date

),

windowed as (

    select
        customer_id,
        -- Features through the end of activity_date describe the customer at the next midnight.
        (activity_date + 1)::timestamp at time zone 'UTC' as event_timestamp,
        activity_date + 1 as snapshot_date,
        activity_date + 1 - first_activity_date as tenure_days,
        (sum(events) over last_7d)::bigint as events_7d,
        (count(*) filter (where events > 0) over last_7d)::bigint as active_days_7d,
        (count(*) filter (where events > 0) over last_30d)::bigint as active_days_30d,
        (count(*) filter (where events > 0) over lifetime)::bigint as active_days_total,
        (sum(page_views) over last_7d)::bigint as page_views_7d,
        (sum(page_views) over last_30d)::bigint as page_views_30d,
        (sum(page_views) over last_90d)::bigint as page_views_90d,
        (sum(product_views) over last_1d)::bigint as product_views_1d,
        (sum(product_views) over last_7d)::bigint as product_views_7d,
        (sum(product_views) over last_30d)::bigint as product_views_30d,
        (sum(product_views) over last_90d)::bigint as product_views_90d,
        (sum(cart_adds) over last_7d)::bigint as cart_adds_7d,
        (sum(cart_adds) over last_30d)::bigint as cart_adds_30d,
        (sum(cart_adds) over last_90d)::bigint as cart_adds_90d,
        (sum(cart_removes) over last_30d)::bigint as cart_removes_30d,
        (sum(checkouts) over last_30d)::bigint as checkouts_30d,
        (sum(checkouts) over last_7d)::bigint as checkouts_7d,
        (sum(orders) over last_7d)::bigint as orders_7d,
        (sum(orders) over last_30d)::bigint as orders_30d,
        (sum(orders) over last_90d)::bigint as orders_90d,
        (sum(revenue) over last_30d)::double precision as revenue_30d,
        (sum(orders) over lifetime)::bigint as orders_total,
        (sum(revenue) over lifetime)::double precision as revenue_total,
        (sum(email_opens) over last_30d)::bigint as email_opens_30d,
        (sum(email_clicks) over last_30d)::bigint as email_clicks_30d,
        activity_date + 1 - max(case when events > 0 then activity_date end) over lifetime
            as days_since_last_event,
        activity_date + 1 - max(case when orders > 0 then activity_date end) over lifetime
            as days_since_last_order_raw
    from filled
    window
        customer_window as (partition by customer_id order by activity_date),
        last_1d as (customer_window rows between current row and current row),
        last_7d as (customer_window rows between 6 preceding and current row),
        last_30d as (customer_window rows between 29 preceding and current row),
        last_90d as (customer_window rows between 89 preceding and current row),
        lifetime as (customer_window rows between unbounded preceding and current row)

),

final as (

    select
        customer_id,
        event_timestamp,
        snapshot_date,
        tenure_days,
        events_7d,
        active_days_7d,
        active_days_30d,
        active_days_total,
        page_views_7d,
        page_views_30d,
        page_views_90d,
        product_views_1d,
        product_views_7d,
        product_views_30d,
        product_views_90d,
        cart_adds_7d,
        cart_adds_30d,
        cart_adds_90d,
        cart_removes_30d,
        checkouts_7d,
        checkouts_30d,
        orders_7d,
        orders_30d,
        orders_90d,
        revenue_30d,
        orders_total,
        revenue_total,
        case when orders_total > 0 then (revenue_total / orders_total)::double precision else 0 end
            as avg_order_value,
        email_opens_30d,
        email_clicks_30d,
        days_since_last_event,
        -- Never ordered: as if the last order were just before the customer was first seen.
        coalesce(days_since_last_order_raw, tenure_days + 1) as days_since_last_order,
        (orders_total > 0)::int as is_buyer,
        -- RFM quintiles among the customers known at the same snapshot (5 = best).
        ntile(5) over (partition by snapshot_date order by coalesce(days_since_last_order_raw, 100000) desc)
            as rfm_recency_score,
        ntile(5) over (partition by snapshot_date order by orders_total) as rfm_frequency_score,
        ntile(5) over (partition by snapshot_date order by revenue_total) as rfm_monetary_score
    from windowed

)

select * from final
