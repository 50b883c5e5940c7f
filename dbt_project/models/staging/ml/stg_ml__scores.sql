{{ config(tags=["audiences"]) }}

with

scores as (

    select * from {{ source('ml', 'scores') }}

),

final as (

    select customer_id, model_name, score, percentile, as_of
    from scores
    where as_of = (select max(as_of) from scores)

)

select * from final
