{{ config(tags=["audiences"]) }}

with

uplift_scores as (

    select * from {{ source('ml', 'uplift_scores') }}

),

final as (

    select
        campaign,
        customer_id,
        uplift,
        probability_treated as uplift_if_treated,
        probability_control as uplift_if_control
    from uplift_scores

)

select * from final
