{{ config(tags=["audiences"]) }}

with

recommendations as (

    select * from {{ source('ml', 'recommendations') }}

),

final as (

    select customer_id, category as recommended_category
    from recommendations
    where rank = 1 and as_of = (select max(as_of) from recommendations)

)

select * from final
