{{ config(tags=["audiences"]) }}

with

scores as (

    select * from {{ source('ml', 'scores') }}

),

latest as (

    select max(as_of) as latest_as_of from scores

),

final as (

    select
        scores.customer_id,
        scores.model_name,
        scores.score,
        scores.percentile,
        scores.as_of
    from scores
    inner join latest on scores.as_of = latest.latest_as_of

)

select * from final
