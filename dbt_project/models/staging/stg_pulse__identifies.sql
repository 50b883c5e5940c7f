{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        on_schema_change='append_new_columns',
        post_hook='{{ analyze_if_new_or_grown(this) }}',
        indexes=[{'columns': ['event_id'], 'unique': True}, {'columns': ['loaded_at']}],
    )
}}
-- The events that tie identifiers together: `identify`, `alias` and sign-ins. The identity graph is
-- built from these only.
--
-- An incremental table, unlike the other staging models (views): the identity graph is rebuilt from it
-- on every run, and as a view each rebuild scanned all of raw.events for the few identity events. New
-- loads (minus the `lookback` var) are appended; when raw.events loses rows the on-run-start reset
-- empties it with the other incremental models.
with

events as (

    select * from {{ ref('stg_pulse__events') }}
    {% if is_incremental() -%}
        where loaded_at > {{ loaded_since(this) }}
    {%- endif %}

),

final as (

    select
        event_id,
        event_type,
        event_name,
        user_id,
        anonymous_id,
        previous_id,
        event_at,
        loaded_at,
        email_sha256
    from events
    where event_type in ('identify', 'alias') or event_name in ('signed_in', 'signed_up')

)

select * from final
