-- depends_on: {{ ref('stg_audiences__definitions') }}
-- Current members of every audience defined in YAML (campaigns/audiences/*.yml, synced to
-- audiences.audience_definitions by `pulse audiences`): the customers matching the rule, best first by
-- `rank_by`, capped at `max_size`, each in a stable treatment / holdout group. With `uplift_campaign`,
-- the rule and rank_by may also use that campaign's uplift (ml.uplift_scores).
{% set definitions = [] %}
{% if execute %}
    {% set rows = run_query("select audience_name, rule, rank_by, holdout_pct, max_size, uplift_campaign from " ~ ref('stg_audiences__definitions') ~ " order by audience_name") %}
    {% set definitions = rows.rows %}
{% endif %}

with

-- Used inside the Jinja loop over definitions, which the linter renders empty.
inputs as (  -- noqa: ST03

    select * from {{ ref('audience_inputs') }}

),

uplift_scores as (  -- noqa: ST03

    select * from {{ ref('stg_ml__uplift_scores') }}

),

matched as (

    {% for d in definitions %}
    select
        '{{ d[0] }}'::text as audience_name,
        customer_id,
        ({{ d[2] }})::double precision as score,
        as_of,
        recommended_category,
        {{ d[3] }} as holdout_pct,
        {{ d[4] if d[4] is not none else "null" }}::integer as max_size,
        row_number() over (order by {{ d[2] }} desc nulls last, customer_id) as member_position
    from (
        -- the definition's campaign's uplift beside the inputs (null without one)
        select
            inputs.*,
            uplift_scores.uplift,
            uplift_scores.uplift_if_treated,
            uplift_scores.uplift_if_control
        from inputs
        left join uplift_scores
            on inputs.customer_id = uplift_scores.customer_id
            and uplift_scores.campaign = '{{ d[5] or "" }}'
    ) as inputs
    where {{ d[1] }}
    {{ "union all" if not loop.last }}
    {% endfor %}
    {% if not definitions %}
    select
null::text as audience_name,
null::text as customer_id,
null::double precision as score,
        null::timestamptz as as_of,
        null::text as recommended_category,
        0 as holdout_pct,
        null::integer as max_size,
        0::bigint as member_position
    where false
    {% endif %}

),

final as (

    select
        audience_name,
        customer_id,
        case
            when {{ holdout_bucket('audience_name', 'customer_id') }} < holdout_pct then 'holdout'
            else 'treatment'
        end as "group",
        score,
        member_position as member_rank,
        as_of,
        recommended_category
    from matched
    where max_size is null or member_position <= max_size

)

select * from final
