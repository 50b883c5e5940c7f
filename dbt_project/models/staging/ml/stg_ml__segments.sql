{{ config(tags=["audiences"]) }}

with

segments as (

    select * from {{ source('ml', 'segments') }}

),

final as (

    select customer_id, rfm_segment, cluster_label
    from segments
    where as_of = (select max(as_of) from segments)

)

select * from final
