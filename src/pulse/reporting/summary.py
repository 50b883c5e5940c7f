"""What Pulse produced, for people: row counts of the output tables and the champion's metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.modeling.tasks import PROPENSITY

OUTPUT_TABLES = (
    "raw.events",
    "raw.events_rejected",
    "marts.orders",
    "marts.customer_features",
    "ml.model_runs",
    "ml.model_metrics",
    "ml.scores",
    "audiences.audience_members",
)

AUDIENCE_SQL = """select "group", count(*) as customers, round(avg(score)::numeric, 3) as avg_score
from audiences.audience_members
where audience_name = 'likely_buyers'
group by "group";"""


@dataclass
class Summary:
    row_counts: dict[str, int | None]  # None: the table does not exist yet
    champion_run: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def summarize(settings: Settings | None = None) -> Summary:
    settings = settings or get_settings()
    counts: dict[str, int | None] = {}
    with engine(settings).connect() as conn:
        for table in OUTPUT_TABLES:
            exists = conn.execute(sa.text("select to_regclass(:t) is not null"), {"t": table}).scalar()
            counts[table] = (
                conn.execute(sa.text(f"select count(*) from {table}")).scalar() if exists else None
            )
        run_id = None
        metrics: dict[str, float] = {}
        if counts.get("ml.model_runs"):
            run_id = conn.execute(
                sa.text("select run_id from ml.model_runs where is_champion and model_name = :m"),
                {"m": PROPENSITY},
            ).scalar()
            rows = conn.execute(
                sa.text(
                    "select metric, value from ml.model_metrics where run_id = :r and fold = 'holdout' and bucket = 0"
                ),
                {"r": run_id},
            ).all()
            metrics = {metric: value for metric, value in rows}
    return Summary(counts, run_id, metrics)
