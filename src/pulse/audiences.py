"""Audiences with deterministic holdout groups (`pulse audiences`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.modeling.tasks import PROPENSITY


@dataclass(frozen=True)
class AudienceDefinition:
    name: str
    description: str
    model_name: str
    min_percentile: int  # members score at or above this percentile
    holdout_pct: int

    @property
    def rule(self) -> str:
        return f"{self.model_name} percentile >= {self.min_percentile}"


LIKELY_BUYERS = AudienceDefinition(
    name="likely_buyers",
    description="Top decile of purchase propensity for the coming label window.",
    model_name=PROPENSITY,
    min_percentile=91,
    holdout_pct=10,
)


def is_holdout(audience: str, customer_id: str, holdout_pct: int) -> bool:
    """Stable per (audience, customer): the same customer is always in the same group of an audience."""
    digest = hashlib.sha256(f"{audience}:{customer_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 100 < holdout_pct


@dataclass
class AudienceResult:
    audience: str
    members: int
    holdout: int


def build_audience(
    definition: AudienceDefinition = LIKELY_BUYERS, settings: Settings | None = None
) -> AudienceResult:
    """Replace the audience's members with the customers whose latest score qualifies."""
    settings = settings or get_settings()
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text(
                "insert into audiences.audience_definitions (audience_name, description, model_name, rule, holdout_pct) "
                "values (:name, :description, :model_name, :rule, :holdout_pct) "
                "on conflict (audience_name) do update set description = excluded.description, "
                "model_name = excluded.model_name, rule = excluded.rule, holdout_pct = excluded.holdout_pct"
            ),
            {**definition.__dict__, "rule": definition.rule},
        )
        rows = (
            conn.execute(
                sa.text(
                    "select customer_id, score, percentile, as_of from ml.scores "
                    "where model_name = :m and as_of = (select max(as_of) from ml.scores where model_name = :m) "
                    "and percentile >= :p order by customer_id"
                ),
                {"m": definition.model_name, "p": definition.min_percentile},
            )
            .mappings()
            .all()
        )
        members = [
            {
                "audience_name": definition.name,
                "customer_id": r["customer_id"],
                "group": "holdout"
                if is_holdout(definition.name, r["customer_id"], definition.holdout_pct)
                else "treatment",
                "score": r["score"],
                "percentile": r["percentile"],
                "as_of": r["as_of"],
            }
            for r in rows
        ]
        conn.execute(
            sa.text("delete from audiences.audience_members where audience_name = :a"), {"a": definition.name}
        )
        if members:
            conn.execute(
                sa.text(
                    'insert into audiences.audience_members (audience_name, customer_id, "group", score, percentile, as_of) '
                    "values (:audience_name, :customer_id, :group, :score, :percentile, :as_of)"
                ),
                members,
            )
    return AudienceResult(definition.name, len(members), sum(m["group"] == "holdout" for m in members))
