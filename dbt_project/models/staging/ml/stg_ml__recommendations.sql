{{ config(tags=["audiences"]) }}

with

recommendations as (

    select * from {{ source('ml', 'recommendations') }}

),

latest as (

    select max(as_of) as latest_as_of from recommendations

),

final as (

    select
        recommendations.customer_id,
        recommendations.category as recommended_category
    from recommendations
    inner join latest on recommendations.as_of = latest.latest_as_of
    where recommendations.rank = 1

)

select * from final
