"""Audiences as code: YAML definitions -> dbt models -> members with holdouts, history, lift, exports.

`campaigns/audiences/*.yml` define each audience (a SQL rule over `audiences.audience_inputs`, what to
rank by, holdout share, maximum size, outcome window). `build_audiences` validates and syncs them to
`audiences.audience_definitions`, builds the dbt models tagged `audiences` (`audience_members` holds the
current members; the holdout group is a hash of audience and customer, so it never changes), then
records entries and exits in `audiences.audience_membership_history` and reads out the lift of every
cohort whose outcome window has passed into `audiences.audience_lift`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, Field, model_validator

from pulse.audience_rules import UPLIFT_COLUMNS, check_rank_by, check_rule
from pulse.campaign_files import load_folder, store_definitions
from pulse.config import Settings, get_settings
from pulse.csv_export import SafeCsvWriter
from pulse.db import engine
from pulse.exports import record_export
from pulse.locks import marts_lock
from pulse.transform import AUDIENCES_SELECTOR, compiled_sql, run_dbt

Z_95 = 1.959964


class AudienceDefinition(BaseModel):
    """One audience, as written in YAML."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    description: str = Field(min_length=1)
    # Checked by pulse.audience_rules; stored and run as the checked tree's rendering.
    rule: Annotated[str, AfterValidator(check_rule)] = Field(
        min_length=1, description="SQL condition over audiences.audience_inputs columns"
    )
    rank_by: Annotated[str, AfterValidator(check_rank_by)] = Field(
        pattern=r"^[a-z][a-z0-9_]*$", description="numeric column of audience_inputs; best first"
    )
    holdout_pct: int = Field(ge=0, le=50)
    max_size: int | None = Field(default=None, gt=0)
    outcome_days: int = Field(default=14, gt=0)
    uplift_campaign: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,100}$",
        description="campaign of `pulse train-uplift` whose uplift, uplift_if_treated, uplift_if_control "
        "the rule and rank_by may use",
    )

    @model_validator(mode="after")
    def _uplift_needs_a_campaign(self) -> AudienceDefinition:
        used = {self.rank_by} | set(re.findall(r"[a-z_]+", self.rule))
        if used & UPLIFT_COLUMNS.keys() and self.uplift_campaign is None:
            raise ValueError("rule or rank_by uses uplift: name the campaign in uplift_campaign")
        return self


class AudienceConfigError(ValueError):
    """A definition file is invalid; the message names the file and the field."""


def definitions_dir(settings: Settings) -> Path:
    return settings.campaigns_dir / "audiences"


def load_definitions(folder: Path) -> list[AudienceDefinition]:
    return load_folder(folder, AudienceDefinition, AudienceConfigError, "audience")


def sync_definitions(definitions: list[AudienceDefinition], settings: Settings) -> None:
    """Make audiences.audience_definitions exactly the YAML definitions."""
    rows = [{"audience_name": d.name, **d.model_dump(exclude={"name"})} for d in definitions]
    with engine(settings).begin() as conn:
        store_definitions(conn, "audiences.audience_definitions", "audience_name", rows)


@dataclass
class AudienceChange:
    audience: str
    members: int
    holdout: int
    entered: int
    left: int
    entering_sample: list[str] = field(default_factory=list)
    leaving_sample: list[str] = field(default_factory=list)


@dataclass
class AudienceBuild:
    dry_run: bool
    changes: list[AudienceChange]
    lift_rows: int = 0


_EMPTY_MEMBERS = (
    'select null::text as audience_name, null::text as customer_id, null::text as "group" where false'
)

_CHANGES_SQL = """
with current_members as ({current}),
new_members as ({new}),
entering as (
    select n.audience_name, n.customer_id from new_members n
    left join current_members c using (audience_name, customer_id) where c.customer_id is null
),
leaving as (
    select c.audience_name, c.customer_id from current_members c
    left join new_members n using (audience_name, customer_id) where n.customer_id is null
)
select d.audience_name,
    (select count(*) from new_members n where n.audience_name = d.audience_name) as members,
    (select count(*) from new_members n where n.audience_name = d.audience_name and n."group" = 'holdout'),
    (select count(*) from entering e where e.audience_name = d.audience_name) as entered,
    (select count(*) from leaving l where l.audience_name = d.audience_name) as left_,
    array(select customer_id from entering e where e.audience_name = d.audience_name order by 1 limit 5),
    array(select customer_id from leaving l where l.audience_name = d.audience_name order by 1 limit 5)
from audiences.audience_definitions d
order by 1
"""


def _members_exist(conn) -> bool:
    return bool(
        conn.execute(sa.text("select to_regclass('audiences.audience_members') is not null")).scalar()
    )


def preview_changes(settings: Settings) -> list[AudienceChange]:
    """Who would enter and leave each audience if it were rebuilt now; changes nothing but the input views."""
    run_dbt(["build", "--select", AUDIENCES_SELECTOR, "--exclude", "audience_members"], settings)
    candidates = compiled_sql("audience_members", settings)
    with engine(settings).connect() as conn:
        current = (
            'select audience_name, customer_id, "group" from audiences.audience_members'
            if _members_exist(conn)
            else _EMPTY_MEMBERS
        )
        rows = conn.execute(sa.text(_CHANGES_SQL.format(current=current, new=candidates))).all()
    return [AudienceChange(r[0], r[1], r[2], r[3], r[4], list(r[5]), list(r[6])) for r in rows]


def record_history(conn) -> list[AudienceChange]:
    """Close history rows of customers who left (or changed group), open rows for those who entered.

    Times are the scores' snapshot (`as_of`), not the wall clock, so re-running changes nothing.
    """
    as_of = conn.execute(sa.text("select max(as_of) from audiences.audience_members")).scalar()
    left = (
        conn.execute(
            sa.text(
                """
            update audiences.audience_membership_history h set exited_at = :as_of
            where h.exited_at is null and not exists (
                select 1 from audiences.audience_members m
                where m.audience_name = h.audience_name and m.customer_id = h.customer_id and m."group" = h."group")
            returning audience_name
            """
            ),
            {"as_of": as_of},
        )
        .scalars()
        .all()
    )
    entered = (
        conn.execute(
            sa.text(
                """
            insert into audiences.audience_membership_history (audience_name, customer_id, "group", entered_at)
            select m.audience_name, m.customer_id, m."group", m.as_of from audiences.audience_members m
            where not exists (
                select 1 from audiences.audience_membership_history h
                where h.audience_name = m.audience_name and h.customer_id = m.customer_id
                  and h."group" = m."group" and h.exited_at is null)
            on conflict (audience_name, customer_id, entered_at) do update set exited_at = null
            returning audience_name
            """
            )
        )
        .scalars()
        .all()
    )
    sizes = conn.execute(
        sa.text(
            """select d.audience_name, count(m.customer_id), count(m.customer_id) filter (where m."group" = 'holdout')
            from audiences.audience_definitions d left join audiences.audience_members m using (audience_name)
            group by 1 order by 1"""
        )
    ).all()
    return [AudienceChange(name, n, h, entered.count(name), left.count(name)) for name, n, h in sizes]


def build_audiences(settings: Settings | None = None, dry_run: bool = False) -> AudienceBuild:
    """Rebuild every audience from the latest scores (or, with dry_run, only report who would move)."""
    settings = settings or get_settings()
    sync_definitions(load_definitions(definitions_dir(settings)), settings)
    with marts_lock("shared", "audience build", settings):
        if dry_run:
            return AudienceBuild(True, preview_changes(settings))
        run_dbt(["build", "--select", AUDIENCES_SELECTOR], settings)
        with engine(settings).begin() as conn:
            changes = record_history(conn)
    return AudienceBuild(False, changes, read_out_lift(settings))


@dataclass
class Lift:
    """Treatment versus holdout over one outcome window, with 95% normal-approximation intervals."""

    treatment_customers: int
    holdout_customers: int
    treatment_conversion: float
    holdout_conversion: float
    treatment_revenue: float
    holdout_revenue: float
    treatment_revenue_var: float
    holdout_revenue_var: float

    @classmethod
    def of_groups(cls, treatment: Mapping, holdout: Mapping) -> Lift:
        """From one readout row per group: customers, conversion, revenue and revenue_var."""
        t, h = treatment, holdout
        return cls(
            t["customers"], h["customers"], t["conversion"], h["conversion"],
            t["revenue"], h["revenue"], t["revenue_var"], h["revenue_var"],
        )  # fmt: skip

    def columns(self) -> dict[str, float | int | None]:
        """The readout tables' statistics columns (audiences.audience_lift, activation.trigger_lift)."""
        low, high = self.absolute_lift_ci
        rlow, rhigh = self.revenue_lift_ci
        relative_low, relative_high = self.relative_lift_ci or (None, None)
        return {
            "treatment_customers": self.treatment_customers,
            "holdout_customers": self.holdout_customers,
            "treatment_conversion": self.treatment_conversion,
            "holdout_conversion": self.holdout_conversion,
            "absolute_lift": self.absolute_lift,
            "absolute_lift_ci_low": low,
            "absolute_lift_ci_high": high,
            "relative_lift": self.relative_lift,
            "relative_lift_ci_low": relative_low,
            "relative_lift_ci_high": relative_high,
            "treatment_revenue": self.treatment_revenue,
            "holdout_revenue": self.holdout_revenue,
            "revenue_lift": self.revenue_lift,
            "revenue_lift_ci_low": rlow,
            "revenue_lift_ci_high": rhigh,
        }

    @property
    def absolute_lift(self) -> float:
        return self.treatment_conversion - self.holdout_conversion

    @property
    def absolute_lift_ci(self) -> tuple[float, float]:
        pt, pc = self.treatment_conversion, self.holdout_conversion
        se = math.sqrt(pt * (1 - pt) / self.treatment_customers + pc * (1 - pc) / self.holdout_customers)
        return self.absolute_lift - Z_95 * se, self.absolute_lift + Z_95 * se

    @property
    def relative_lift(self) -> float | None:
        return self.absolute_lift / self.holdout_conversion if self.holdout_conversion > 0 else None

    @property
    def relative_lift_ci(self) -> tuple[float, float] | None:
        """Fieller's interval for treatment / holdout conversion, minus 1. The ratio of two rates is skewed
        (a few holdout conversions fewer make it jump), which Fieller's keeps; None when the holdout rate
        is not clearly above zero, where the interval would be unbounded."""
        pt, pc = self.treatment_conversion, self.holdout_conversion
        vt = pt * (1 - pt) / self.treatment_customers
        vc = pc * (1 - pc) / self.holdout_customers
        a = pc * pc - Z_95**2 * vc
        c = pt * pt - Z_95**2 * vt
        disc = (pt * pc) ** 2 - a * c
        if a <= 0 or disc < 0:
            return None
        root = math.sqrt(disc)
        return (pt * pc - root) / a - 1, (pt * pc + root) / a - 1

    @property
    def revenue_lift(self) -> float:
        return self.treatment_revenue - self.holdout_revenue

    @property
    def revenue_lift_ci(self) -> tuple[float, float]:
        se = math.sqrt(
            self.treatment_revenue_var / self.treatment_customers
            + self.holdout_revenue_var / self.holdout_customers
        )
        return self.revenue_lift - Z_95 * se, self.revenue_lift + Z_95 * se


_COHORTS_SQL = """
with data_end as (select max(ordered_at) as at from marts.orders),
cohorts as (
    select distinct h.audience_name, h.entered_at as as_of, d.outcome_days
    from audiences.audience_membership_history h
    join audiences.audience_definitions d using (audience_name)
    where h.entered_at + make_interval(days => d.outcome_days) <= (select at from data_end)
),
members as (
    select c.audience_name, c.as_of, c.outcome_days, h.customer_id, h."group"
    from cohorts c
    join audiences.audience_membership_history h
      on h.audience_name = c.audience_name and h.entered_at <= c.as_of
     and (h.exited_at is null or h.exited_at > c.as_of)
),
outcomes as (
    select m.audience_name, m.as_of, m.outcome_days, m."group", m.customer_id,
           count(o.order_id) > 0 as converted, coalesce(sum(o.revenue), 0)::double precision as revenue
    from members m
    left join marts.orders o
      on o.customer_id = m.customer_id and o.ordered_at >= m.as_of
     and o.ordered_at < m.as_of + make_interval(days => m.outcome_days)
    group by 1, 2, 3, 4, 5
)
select audience_name, as_of, outcome_days, "group", count(*) as customers,
       avg(converted::int)::double precision as conversion, avg(revenue) as revenue,
       coalesce(var_samp(revenue), 0) as revenue_var
from outcomes group by 1, 2, 3, 4
"""


def read_out_lift(settings: Settings) -> int:
    """Lift of every cohort whose outcome window has passed, into audiences.audience_lift (replaced)."""
    with engine(settings).begin() as conn:
        rows = conn.execute(sa.text(_COHORTS_SQL)).mappings().all()
        groups: dict[tuple, dict] = {}
        for r in rows:
            groups.setdefault((r["audience_name"], r["as_of"], r["outcome_days"]), {})[r["group"]] = r
        records = []
        for (audience, as_of, days), g in sorted(groups.items()):
            if "treatment" not in g or "holdout" not in g:
                continue  # no comparison without both groups
            lift = Lift.of_groups(g["treatment"], g["holdout"])
            records.append(
                {"audience_name": audience, "as_of": as_of, "outcome_days": days,
                 "measured_at": datetime.now(UTC), **lift.columns()}
            )  # fmt: skip
        # Replace the readouts, but keep a row (and its measured_at) whose numbers did not change, so the
        # same inputs leave the table identical.
        conn.execute(
            sa.text(
                "delete from audiences.audience_lift where (audience_name, as_of) not in "
                "(select * from unnest(cast(:names as text[]), cast(:dates as timestamptz[])))"
            ),
            {"names": [r["audience_name"] for r in records], "dates": [r["as_of"] for r in records]},
        )
        if records:
            columns = list(records[0])
            keys = ("audience_name", "as_of")
            values = [c for c in columns if c not in (*keys, "measured_at")]
            updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
            changed = (
                f"({', '.join('audience_lift.' + c for c in values)}) is distinct from "
                f"({', '.join('excluded.' + c for c in values)})"
            )
            conn.execute(
                sa.text(
                    f"insert into audiences.audience_lift ({', '.join(columns)}) "
                    f"values ({', '.join(':' + c for c in columns)}) "
                    f"on conflict (audience_name, as_of) do update set {updates} where {changed}"
                ),
                records,
            )
    return len(records)


def export_audiences(out_dir: Path, settings: Settings | None = None) -> list[Path]:
    """One CSV per audience of its treatment members (never the holdout) with hashed emails."""
    settings = settings or get_settings()
    out_dir.mkdir(parents=True, exist_ok=True)
    with engine(settings).connect() as conn:
        names = (
            conn.execute(sa.text("select audience_name from audiences.audience_definitions order by 1"))
            .scalars()
            .all()
        )
        # No audiences, no query (the view may not exist yet). `audience_inputs` is a view over the
        # latest scores: computed once here (materialized), since
        # a join the planner nests (tables not analyzed yet) would compute it again for every member.
        members: Iterable[Sequence[Any]] = []
        if names:
            members = conn.execution_options(stream_results=True, yield_per=10_000).execute(
                sa.text(
                    """with inputs as materialized (
                        select customer_id, email_sha256 from audiences.audience_inputs
                    )
                    select m.audience_name, m.customer_id, i.email_sha256, m.member_rank,
                        m.recommended_category
                    from audiences.audience_members m
                    left join inputs i using (customer_id)
                    where m."group" = 'treatment' and m.audience_name = any(:names)
                    order by m.audience_name, m.member_rank"""
                ),
                {"names": list(names)},
            )
        written = set()
        for audience, rows in groupby(members, key=itemgetter(0)):
            _write_export(out_dir / f"{audience}.csv", (row[1:] for row in rows))
            written.add(audience)
    for name in set(names) - written:
        _write_export(out_dir / f"{name}.csv", [])
    paths = [out_dir / f"{name}.csv" for name in names]
    record_export(out_dir, "audience export", settings)
    return paths


def _write_export(path: Path, rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(["customer_id", "email_sha256", "rank", "recommended_category"])
        writer.writerows(rows)
