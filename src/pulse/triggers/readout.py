"""Lift per trigger: treatment (fired) against holdout (held out at the same due time), conversion and
revenue within the trigger's outcome window after the due time, for firings whose window has passed.

The same statistics as the audiences' readout (`pulse.audiences.Lift`: 95% normal-approximation
intervals); the unit is one firing. Outcomes are read from `raw.events` (the outcome event by the same
customer), so the readout does not wait for a dbt build. Written to `activation.trigger_lift`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from pulse.audiences import Lift
from pulse.config import Settings
from pulse.db import engine, warehouse_url
from pulse.triggers.engine import ensure_trigger_tables

_OUTCOMES_SQL = """
with settled as (
    select t.trigger_name, t.timer_key, t.customer_id, t."group", t.fire_at,
           d.definition -> 'outcome' ->> 'event' as outcome_event,
           (d.definition -> 'outcome' ->> 'window')::integer as window_seconds
      from activation.trigger_timers t
      join activation.trigger_definitions d using (trigger_name)
     where t.status in ('fired', 'held_out')
),
matured as (
    select * from settled where fire_at + make_interval(secs => window_seconds) <= :now
),
outcomes as (
    select m.trigger_name, m.outcome_event, m.window_seconds, m."group", m.timer_key,
           count(e.event_id) > 0 as converted,
           coalesce(sum(case when jsonb_typeof(e.properties -> 'revenue') = 'number'
                             then (e.properties ->> 'revenue')::double precision end), 0) as revenue
      from matured m
      left join raw.events e
        on e.user_id = m.customer_id and e.event_name = m.outcome_event
       and e.event_at > m.fire_at and e.event_at <= m.fire_at + make_interval(secs => m.window_seconds)
     group by 1, 2, 3, 4, 5
)
select trigger_name, outcome_event, window_seconds, "group", count(*) as customers,
       avg(converted::integer)::double precision as conversion, avg(revenue) as revenue,
       coalesce(var_samp(revenue), 0) as revenue_var
  from outcomes group by 1, 2, 3, 4
"""


def read_out_trigger_lift(settings: Settings, now: datetime | None = None) -> int:
    """Replace activation.trigger_lift; returns the number of triggers read out (both groups needed)."""
    ensure_trigger_tables(warehouse_url(settings))
    now = now or datetime.now(UTC)
    with engine(settings).begin() as conn:
        rows = conn.execute(sa.text(_OUTCOMES_SQL), {"now": now}).mappings().all()
        groups: dict[tuple, dict] = {}
        for r in rows:
            groups.setdefault((r["trigger_name"], r["outcome_event"], r["window_seconds"]), {})[
                r["group"]
            ] = r
        records = []
        for (name, outcome_event, window), g in sorted(groups.items()):
            if "treatment" not in g or "holdout" not in g:
                continue
            lift = Lift.of_groups(g["treatment"], g["holdout"])
            records.append(
                {"trigger_name": name, "measured_at": now, "outcome_event": outcome_event,
                 "outcome_seconds": window, **lift.columns()}
            )  # fmt: skip
        conn.execute(sa.text("delete from activation.trigger_lift"))
        if records:
            columns = list(records[0])
            conn.execute(
                sa.text(
                    f"insert into activation.trigger_lift ({', '.join(columns)}) "
                    f"values ({', '.join(':' + c for c in columns)})"
                ),
                records,
            )
    return len(records)
