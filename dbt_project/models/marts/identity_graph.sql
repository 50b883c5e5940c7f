-- The identity graph for people to query: which customer each device (anonymous id) belonged to, and
-- when. One row per episode; `valid_to` is null for the current one.
with

graph as (

    select * from {{ ref('int_identity_graph') }}

),

final as (

    select
        anonymous_id || '|' || episode_number as identity_link_id,
        anonymous_id,
        customer_id,
        valid_from,
        valid_to,
        episode_number,
        valid_to is null as is_current,
        first_link_event_id,
        first_link_source
    from graph

)

select * from final
