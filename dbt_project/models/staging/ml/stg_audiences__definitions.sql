{{ config(tags=["audiences"]) }}

with

definitions as (

    select * from {{ source('audiences', 'audience_definitions') }}

),

final as (

    select
        audience_name,
        rule,
        rank_by,
        holdout_pct,
        max_size,
        uplift_campaign
    from definitions

)

select * from final
