-- One row per scored customer: every model's score and percentile side by side, segments, the top
-- recommendation and the customer facts audience rules are written against.
{{ config(materialized="view") }}

{% set models = ["purchase_propensity", "purchase_7d", "purchase_30d", "churn_90d", "value_90d"] %}

with

scores as (

    select * from {{ ref('stg_ml__scores') }}

),

customers as (

    select * from {{ ref('customers') }}

),

sessions as (

    select * from {{ ref('sessions') }}

),

segments as (

    select * from {{ ref('stg_ml__segments') }}

),

recommendations as (

    select * from {{ ref('stg_ml__recommendations') }}

),

identities as (

    select * from {{ ref('stg_pulse__identifies') }}

),

pivoted as (

    select
        customer_id,
        max(as_of) as as_of,
        {% for model in models %}
        max(score) filter (where model_name = '{{ model }}') as {{ model }}_score,
        max(percentile) filter (where model_name = '{{ model }}') as {{ model }}_percentile{{ "," if not loop.last }}
        {% endfor %}
    from scores
    group by customer_id

),

abandoned_carts as (

    select
        customer_id,
        max(ended_at) as last_abandoned_cart_at
    from sessions
    where customer_id is not null and cart_adds > 0 and orders = 0
    group by customer_id

),

emails as (

    select distinct on (user_id)
user_id as customer_id,
email_sha256
    from identities
    where user_id is not null and email_sha256 is not null
    order by user_id asc, event_at desc

),

final as (

    select
        pivoted.*,
        coalesce(customers.order_count, 0) as order_count,
        coalesce(customers.revenue, 0) as revenue,
        customers.days_since_last_order,
        customers.last_order_at,
        customers.last_seen_at,
        customers.rfm_monetary_score,
        coalesce(segments.rfm_segment, customers.rfm_segment, 'prospects') as rfm_segment,
        segments.cluster_label,
        recommendations.recommended_category,
        abandoned_carts.last_abandoned_cart_at,
        emails.email_sha256
    from pivoted
    left join customers on pivoted.customer_id = customers.customer_id
    left join segments on pivoted.customer_id = segments.customer_id
    left join recommendations on pivoted.customer_id = recommendations.customer_id
    left join abandoned_carts on pivoted.customer_id = abandoned_carts.customer_id
    left join emails on pivoted.customer_id = emails.customer_id

)

select * from final
