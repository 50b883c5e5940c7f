{{ config(tags=["audiences"]) }}

with

segments as (

    select * from {{ source('ml', 'segments') }}

),

latest as (

    select max(as_of) as latest_as_of from segments

),

final as (

    select
        segments.customer_id,
        segments.rfm_segment,
        segments.cluster_label
    from segments
    inner join latest on segments.as_of = latest.latest_as_of

)

select * from final
