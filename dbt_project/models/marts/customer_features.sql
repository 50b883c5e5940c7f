{#-
    Windowed features: (column, daily metric, window in days). `none` = lifetime.
    Every one is a sum of daily cells, so a snapshot is "the previous snapshot plus what entered minus
    what left the window", which is how this model computes them (see below).
-#}
{%- set windowed = [] -%}
{%- for metric in ['page_views', 'product_views', 'cart_adds', 'cart_removes', 'checkouts', 'orders',
                   'revenue', 'sessions', 'email_opens', 'email_clicks', 'abandoned_carts'] -%}
    {%- for days in [1, 7, 30, 90] -%}
        {%- do windowed.append((metric ~ '_' ~ days ~ 'd', metric, days)) -%}
    {%- endfor -%}
{%- endfor -%}
{%- do windowed.append(('events_7d', 'events', 7)) -%}
{%- do windowed.append(('active_days_7d', 'is_active_day', 7)) -%}
{%- do windowed.append(('active_days_30d', 'is_active_day', 30)) -%}
{%- do windowed.append(('active_days_total', 'is_active_day', none)) -%}
{%- do windowed.append(('orders_total', 'orders', none)) -%}
{%- do windowed.append(('revenue_total', 'revenue', none)) -%}
{%- for category in var('affinity_categories') -%}
    {%- do windowed.append(('product_views_90d_' ~ category, 'product_views_' ~ category, 90)) -%}
{%- endfor -%}
{%- set window_days = [1, 7, 30, 90] -%}
{%- set money = windowed | selectattr(1, 'equalto', 'revenue') | map(attribute=0) | list -%}
{#- Running state that is not a sum: first/last active day and last order day. -#}
{%- set state_dates = ['first_seen_on', 'last_event_on', 'last_order_on'] -%}
{%- set rfm_columns = ['rfm_recency_score', 'rfm_frequency_score', 'rfm_monetary_score'] -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['customer_id', 'snapshot_date'],
        on_schema_change='append_new_columns',
        indexes=[
            {'columns': ['customer_id', 'snapshot_date'], 'unique': True},
            {'columns': ['snapshot_date']},
            {'columns': ['_updated_at']},
        ],
    )
}}
-- Point-in-time customer features: one row per customer per day from the first day they are known to
-- the last day of data. The row at `event_timestamp` (midnight UTC) counts an event only if it happened
-- before that midnight AND was attributable to the customer before it (`identified_at`, see
-- int_events_stitched_to_customers): it never sees its own future, including identity links made later.
--
-- How: a daily cell (activity day a, known from day k) starts counting at snapshot day
-- `starts_on = max(a, k) + 1` and, for a w-day window, stops at `max(starts_on, a + w + 1)`. Each cell
-- becomes a +value and a -value "delta" on those days; a snapshot is the running sum of the deltas.
--
-- Incremental, and one SQL for every build: which customers to recompute, and from which snapshot day,
-- is decided in the scratch models `customer_features_this_run` / `customer_features_days_this_run` (a
-- changed daily cell of any age, or a new day of data); each recomputed customer continues from its
-- stored row of the day before. RFM quintiles compare customers within a snapshot, so where a recomputed
-- row's RFM inputs change, the other customers' stored scores for that day are recomputed too and written
-- only if they change. A full build is the same SQL with nothing stored (`stored_rows`): every customer
-- from their first day, and every day's quintiles.
{%- set stored = stored_rows('customer_features', incremental=is_incremental()) %}
with

this_run as (

    -- The customers this run recomputes, each from its first changed snapshot day.
    select
        customer_id,
        recompute_from
    from {{ ref('customer_features_this_run') }}

),

run_days as (

    -- One row: the first and last snapshot day this run writes.
    select
        first_snapshot_on,
        last_snapshot_on
    from {{ ref('customer_features_days_this_run') }}

),

daily as (

    -- The cells that can change a snapshot from the first recomputed day on (see `cells`), as whole
    -- (customer, day) groups for `is_active_day`: cells that start counting then (their activity day, or
    -- the day they became known, is that late), or leave a window then.
    select
        *,
        -- A day counts as active once, from the first of its cells that is known.
        case
            when events > 0 and row_number() over (
                partition by customer_id, activity_date order by (events > 0) desc, identified_date
            ) = 1 then 1 else 0
        end as is_active_day,
        greatest(activity_date, identified_date) + 1 as starts_on
    from {{ ref('int_customer_activity_aggregated_to_days') }} as cell
    where cell.activity_date >= (select run_days.first_snapshot_on - 1 from run_days)
        {%- for days in window_days %}
        or cell.activity_date between (select run_days.first_snapshot_on - {{ days + 1 }} from run_days)
        and (select run_days.last_snapshot_on - {{ days + 1 }} from run_days)
        {%- endfor %}
        or (cell.customer_id, cell.activity_date) in (
            select
                known_late.customer_id,
                known_late.activity_date
            from {{ ref('int_customer_activity_aggregated_to_days') }} as known_late
            where known_late.identified_date >= (select run_days.first_snapshot_on - 1 from run_days)
        )

),

base as (

    -- Each recomputed customer's running totals and dates as stored for the day before.
    select
        this_run.customer_id,
        this_run.recompute_from,
        {%- for name, _, _ in windowed %}
        coalesce(stored_rows.{{ name }}{{ '::numeric' if name in money }}, 0) as base_{{ name }},
        {%- endfor %}
        {%- for name in state_dates %}
        stored_rows.{{ name }} as base_{{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    from this_run
    left join {{ stored }} as stored_rows
        on this_run.customer_id = stored_rows.customer_id
        and stored_rows.snapshot_date = this_run.recompute_from - 1

),

cells as (

    select
        daily.*,
        base.recompute_from
    from daily
    inner join base on daily.customer_id = base.customer_id
    cross join run_days
    where
        -- The cell changes some snapshot in [recompute_from, last_snapshot_on].
        (daily.starts_on >= base.recompute_from and daily.starts_on <= run_days.last_snapshot_on)
        {%- for days in window_days %}
        or (
            greatest(daily.starts_on, daily.activity_date + {{ days + 1 }}) >= base.recompute_from
            and daily.activity_date + {{ days + 1 }} <= run_days.last_snapshot_on
        )
        {%- endfor %}

),

deltas as (

    -- The cell enters every window on starts_on...
    select
        customer_id,
        starts_on as delta_on,
        {%- for name, metric, _ in windowed %}
        {{ metric }} as {{ name }},
        {%- endfor %}
        case when events > 0 then activity_date end as active_on,
        case when orders > 0 then activity_date end as ordered_on
    from cells
    where starts_on >= recompute_from
    {%- for days in window_days %}

    union all

    -- ...and leaves the {{ days }}-day windows {{ days }} days after its activity day.
    select
        customer_id,
        greatest(starts_on, activity_date + {{ days + 1 }}) as delta_on,
        {%- for name, metric, window in windowed %}
        {% if window == days %}-{{ metric }}{% else %}0{% endif %} as {{ name }},
        {%- endfor %}
        null::date as active_on,
        null::date as ordered_on
    from cells
    where greatest(starts_on, activity_date + {{ days + 1 }}) >= recompute_from
    {%- endfor %}

),

daily_deltas as (

    -- Counts are summed as integer, which PostgreSQL sums into a bigint; the sum of a bigint is numeric,
    -- whose arbitrary-precision arithmetic made these sums and the running ones below several times
    -- slower. Money stays numeric (exact).
    select
        customer_id,
        delta_on,
        {%- for name, _, _ in windowed %}
        sum({{ name }}{{ '' if name in money else '::integer' }}) as {{ name }},
        {%- endfor %}
        min(active_on) as first_active_on,
        max(active_on) as last_active_on,
        max(ordered_on) as last_ordered_on
    from deltas
    group by customer_id, delta_on

),

calendar as (

    select
        base.*,
        calendar_days.calendar_day::date as snapshot_date
    from base
    cross join run_days
    cross join lateral generate_series(
        base.recompute_from, run_days.last_snapshot_on, interval '1 day'
    ) as calendar_days (calendar_day)

),

running as (

    select
        calendar.customer_id,
        calendar.snapshot_date,
        {%- for name, _, _ in windowed %}
        calendar.base_{{ name }}
        + sum(coalesce(daily_deltas.{{ name }}, 0){{ '' if name in money else '::integer' }}) over customer_days
            as {{ name }},
        {%- endfor %}
        least(calendar.base_first_seen_on, min(daily_deltas.first_active_on) over customer_days)
            as first_seen_on,
        greatest(calendar.base_last_event_on, max(daily_deltas.last_active_on) over customer_days)
            as last_event_on,
        greatest(calendar.base_last_order_on, max(daily_deltas.last_ordered_on) over customer_days)
            as last_order_on
    from calendar
    left join daily_deltas
        on calendar.customer_id = daily_deltas.customer_id
        and calendar.snapshot_date = daily_deltas.delta_on
    window customer_days as (
        partition by calendar.customer_id order by calendar.snapshot_date rows unbounded preceding
    )

),

recomputed as (

    select
        customer_id,
        (snapshot_date::timestamp at time zone 'UTC') as event_timestamp,
        snapshot_date,
        (snapshot_date - first_seen_on)::bigint as tenure_days,
        {%- for name, _, _ in windowed %}
        {%- if name in money %}
        -- Money is summed as numeric (exact, so increments equal rebuilds) and rounded once here.
        round({{ name }}, 6)::double precision as {{ name }},
        {%- else %}
        {{ name }}::bigint as {{ name }},
        {%- endif %}
        {%- endfor %}
        case when orders_total > 0 then round(revenue_total, 6)::double precision / orders_total else 0 end
            as avg_order_value,
        (snapshot_date - last_event_on)::bigint as days_since_last_event,
        -- Never ordered: as if the last order were just before the customer was first seen.
        coalesce(snapshot_date - last_order_on, snapshot_date - first_seen_on + 1)::bigint
            as days_since_last_order,
        (orders_total > 0)::int::bigint as is_buyer,
        first_seen_on,
        last_event_on,
        last_order_on
    from running
    -- Before the first known activity there is no customer yet.
    where first_seen_on is not null

),

rfm_days as (

    -- Snapshot days where a recomputed row's RFM inputs differ from what is stored (or are new).
    select distinct recomputed.snapshot_date
    from recomputed
    left join lateral (
        {{ stored_snapshot_row(stored, 'recomputed', 'customer_id, orders_total, revenue_total, last_order_on') }}
    ) as stored_rows on true
    where stored_rows.customer_id is null
        or stored_rows.orders_total is distinct from recomputed.orders_total
        or stored_rows.revenue_total is distinct from recomputed.revenue_total
        or stored_rows.last_order_on is distinct from recomputed.last_order_on

),

rfm_population as (

    select
        customer_id,
        snapshot_date,
        orders_total,
        revenue_total,
        last_order_on
    from recomputed
    where snapshot_date in (select rfm_days.snapshot_date from rfm_days)
    union all
    select
        stored_rows.customer_id,
        stored_rows.snapshot_date,
        stored_rows.orders_total,
        stored_rows.revenue_total,
        stored_rows.last_order_on
    from rfm_days
    cross join lateral (
        -- One snapshot day through the snapshot_date index (`offset 0`: not flattened into a scan).
        select
            stored_day.customer_id,
            stored_day.snapshot_date,
            stored_day.orders_total,
            stored_day.revenue_total,
            stored_day.last_order_on
        from {{ stored }} as stored_day
        where stored_day.snapshot_date = rfm_days.snapshot_date
        offset 0  -- noqa: AM09
    ) as stored_rows
    where not exists (
            select 1 from recomputed
            where recomputed.customer_id = stored_rows.customer_id
                and recomputed.snapshot_date = stored_rows.snapshot_date
        )

),

rfm as (

    -- Quintiles among the customers known at the same snapshot (5 = best); ties share a score.
    select
        customer_id,
        snapshot_date,
        {{ quintile_score("coalesce(last_order_on, '0001-01-01'::date)", 'snapshot_date') }}
            as rfm_recency_score,
        {{ quintile_score('orders_total', 'snapshot_date') }} as rfm_frequency_score,
        {{ quintile_score('revenue_total', 'snapshot_date') }} as rfm_monetary_score
    from rfm_population

),

{%- set category_columns = var('affinity_categories') | map('string') | list %}

scored as (

    select
        recomputed.*,
        {%- for name in rfm_columns %}
        coalesce(rfm.{{ name }}, stored_rows.{{ name }}) as {{ name }},
        {%- endfor %}
        {{ category_affinity('recomputed', category_columns) }}
    from recomputed
    left join rfm
        on recomputed.customer_id = rfm.customer_id
        and recomputed.snapshot_date = rfm.snapshot_date
    left join lateral (
        {{ stored_snapshot_row(stored, 'recomputed', rfm_columns | join(', ')) }}
    ) as stored_rows on true

),

rescored as (

    -- Other customers' stored_rows rows whose RFM scores move because the population changed.
    select
        stored_rows.customer_id,
        stored_rows.event_timestamp,
        stored_rows.snapshot_date,
        stored_rows.tenure_days,
        {%- for name, _, _ in windowed %}
        stored_rows.{{ name }},
        {%- endfor %}
        stored_rows.avg_order_value,
        stored_rows.days_since_last_event,
        stored_rows.days_since_last_order,
        stored_rows.is_buyer,
        stored_rows.first_seen_on,
        stored_rows.last_event_on,
        stored_rows.last_order_on,
        {%- for name in rfm_columns %}
        rfm.{{ name }},
        {%- endfor %}
        stored_rows.top_category_90d,
        stored_rows.top_category_share_90d
    from rfm
    cross join lateral (
        {{ stored_snapshot_row(stored, 'rfm', '*') }}
    ) as stored_rows
    where not exists (
            select 1 from recomputed
            where recomputed.customer_id = rfm.customer_id
                and recomputed.snapshot_date = rfm.snapshot_date
        )
        and (
            {%- for name in rfm_columns %}
            stored_rows.{{ name }} <> rfm.{{ name }}{{ " or" if not loop.last }}
            {%- endfor %}
        )

),

changed as (

    select * from scored
    union all
    select * from rescored

),

final as (

    select
        *,
        '{{ run_started_at }}'::timestamptz as _updated_at
    from changed

)

select * from final
