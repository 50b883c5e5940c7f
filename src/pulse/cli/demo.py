"""The uplift loop of `pulse demo` (cli/operations.py), after the flow (simulate ... audiences): the shipped
`uplift_test` audience (every scored customer, half held out) is the test campaign; the simulator plays
it over the audience's outcome window with planted effects (events/campaign_sim.py), its orders are
ingested and built like any others, `train-uplift --audience` learns from the cohort, and the audiences
are rebuilt so `persuadable_buyers` ranks by the new uplift scores. It prints the champion's held-out
Qini beside the Qini of the true effects on the same customers (both kept in ml.uplift_metrics, the
truth as algorithm `true_effect`), and the true incremental conversions of the persuadable audience and
of the likely buyers of the same size.
"""

from __future__ import annotations

import time
from pathlib import Path

from pulse.cli.output import _fail, console
from pulse.config import Settings

UPLIFT_AUDIENCE = "uplift_test"  # campaigns/audiences/uplift_test.yml; persuadable_buyers reads it
CAMPAIGN_DAYS = 8  # its 7-day outcome window and the day after (campaign_sim writes orders on both)


def audience_groups(audience: str, settings: Settings) -> tuple[dict[str, str], int]:
    """The audience's current members (customer_id -> treatment / holdout) and its outcome window."""
    import sqlalchemy as sa

    from pulse.db import engine

    with engine(settings).connect() as conn:
        groups: dict[str, str] = {
            customer: group
            for customer, group in conn.execute(
                sa.text(
                    'select customer_id, "group" from audiences.audience_members where audience_name = :a'
                ),
                {"a": audience},
            )
        }
        days = conn.execute(
            sa.text("select outcome_days from audiences.audience_definitions where audience_name = :a"),
            {"a": audience},
        ).scalar()
    if not groups or days is None:
        _fail(f"audience {audience!r} has no members: run `pulse audiences` first")
    return groups, int(days)


def uplift_loop(settings: Settings, sim_dir: Path) -> dict[str, float]:
    """Play the test campaign, learn uplift from its outcomes, compare with the truth; returns the figures."""
    import pandas as pd

    from pulse.cli.collect import ingest
    from pulse.cli.modeling import build
    from pulse.events.campaign_sim import play_campaign
    from pulse.modeling.campaigns import campaign_from_audience
    from pulse.modeling.uplift import TRUE_EFFECT, train_uplift

    console.rule("[bold]Uplift: a test campaign, its outcomes, the persuadable audience")
    started = time.monotonic()
    groups, days = audience_groups(UPLIFT_AUDIENCE, settings)
    events, _, truth = play_campaign(sim_dir, groups, days, UPLIFT_AUDIENCE)
    effect = pd.Series({t.customer_id: t.true_effect for t in truth})
    treated = [t for t in truth if groups[t.customer_id] == "treatment"]
    console.print(
        f"campaign {UPLIFT_AUDIENCE} played on {len(truth):,} customers over {days} days "
        f"({len(treated):,} treated; {sum(t.true_effect for t in treated):.1f} true incremental orders)"
    )
    ingest(str(events))
    build(full_refresh=False)
    try:
        with console.status(f"training uplift models on {UPLIFT_AUDIENCE}'s outcomes"):
            campaign_from_audience(UPLIFT_AUDIENCE, settings)
            outcome = train_uplift(UPLIFT_AUDIENCE, settings, truth=effect)
    except ValueError as error:
        _fail(str(error))
    model_qini = outcome.held_out[outcome.champion]["qini"]
    true_qini = outcome.held_out[TRUE_EFFECT]["qini"]
    ratio = model_qini / true_qini if true_qini > 0 else float("nan")
    console.print(
        f"uplift champion {outcome.champion}: held-out Qini {model_qini:.4f}, true effects {true_qini:.4f} "
        f"([bold]{ratio:.2f}x[/]; ml.uplift_metrics)"
    )
    persuadable, likely, size = _incremental(settings, effect)
    console.print(
        f"true incremental conversions of the top {size:,} customers: by uplift (persuadable) "
        f"{persuadable:.1f}, by purchase propensity (likely buyers) {likely:.1f}"
    )
    seconds = time.monotonic() - started
    console.print(f"uplift loop: {seconds:.0f} s")
    return {"model_qini": model_qini, "true_qini": true_qini, "ratio": ratio, "persuadable": persuadable,
            "likely": likely, "seconds": seconds}  # fmt: skip


def _incremental(settings: Settings, effect) -> tuple[float, float, int]:
    """Sum of true effects over the top tenth of the campaign's customers by uplift and by purchase
    propensity (the likely_buyers audience is the top decile too)."""
    import sqlalchemy as sa

    from pulse.db import engine

    with engine(settings).connect() as conn:
        uplift = conn.execute(
            sa.text("select customer_id from ml.uplift_scores where campaign = :c order by uplift desc"),
            {"c": UPLIFT_AUDIENCE},
        ).scalars().all()  # fmt: skip
        propensity = conn.execute(
            sa.text(
                "select customer_id from ml.scores where model_name = 'purchase_propensity' "
                "and as_of = (select max(as_of) from ml.scores where model_name = 'purchase_propensity') "
                "order by score desc"
            )
        ).scalars().all()  # fmt: skip
    campaign = set(effect.index)
    propensity = [c for c in propensity if c in campaign]
    size = max(1, len(campaign) // 10)
    return float(effect[list(uplift[:size])].sum()), float(effect[propensity[:size]].sum()), size
