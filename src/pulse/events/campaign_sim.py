"""Planted campaign effects: play a campaign on simulated customers and know its true effect on each.

Every simulated customer answers a campaign (an email) in one of four ways, from latent traits the
event stream shows only indirectly (email opens and clicks show `email_affinity`; visits and orders show
the purchase rate):
- do-not-disturb: low email affinity; the message puts them off (their purchase probability drops);
- sure thing: would very probably buy anyway; the message changes nothing;
- persuadable: likes email and is engaged but not already buying; the message raises the probability,
  more for higher affinity;
- lost cause: everyone else, and whoever never signed in (no email address to send to); nothing changes.

`play_campaign` rebuilds the customers of a simulation (same arguments, same customers), and for each
member of an audience draws whether they order in the outcome window after the audience was chosen:
with the customer's base probability (its purchase rate on the last simulated day, held over the
window), plus the true effect if treated. It writes the orders as events (for `pulse ingest`) and the
truth per customer (type, base probability, true effect) for comparing models with it.
"""

from __future__ import annotations

import csv
import json
import math
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from pulse.events.simulator import ARGUMENTS_FILE, CATEGORIES, _catalog, _Customer, _product_props

DO_NOT_DISTURB_AFFINITY = 0.15
PERSUADABLE_AFFINITY = 0.3
SURE_THING_PROBABILITY = 0.5
MIN_VISITS_PER_DAY = 0.1  # persuadables still visit: an email reaches people who are around


@dataclass(frozen=True)
class SimulationArgs:
    customers: int
    days: int
    seed: int
    activity: float
    end: str  # ISO datetime, exclusive


@dataclass(frozen=True)
class CampaignTruth:
    customer_id: str
    response: str  # persuadable, sure_thing, lost_cause, do_not_disturb
    base_probability: float
    true_effect: float


def load_args(out_dir: Path) -> SimulationArgs:
    path = out_dir / ARGUMENTS_FILE
    if not path.exists():
        raise ValueError(f"{path} not found: play a campaign in the folder `pulse simulate` wrote")
    return SimulationArgs(**json.loads(path.read_text()))


def response(customer: _Customer, outcome_days: int, reachable: bool = True) -> CampaignTruth:
    """The customer's type and true effect of a campaign over `outcome_days` after the simulated end."""
    daily = float(customer.order_rate[-1])
    base = 1 - math.exp(-daily * outcome_days)
    affinity = customer.email_affinity
    if not reachable:
        kind, effect = "lost_cause", 0.0  # never signed in: no email address to send the campaign to
    elif affinity < DO_NOT_DISTURB_AFFINITY:
        kind, effect = "do_not_disturb", -0.6 * base
    elif base >= SURE_THING_PROBABILITY:
        kind, effect = "sure_thing", 0.0
    elif affinity >= PERSUADABLE_AFFINITY and customer.visit_rate[-1] >= MIN_VISITS_PER_DAY:
        kind, effect = "persuadable", min(0.6, affinity) * (1 - base)
    else:
        kind, effect = "lost_cause", 0.0
    return CampaignTruth(customer.customer_id, kind, base, effect)


def customers(args: SimulationArgs) -> Iterable[_Customer]:
    """The simulation's customers, drawn in the same order from the same seed as `simulate` drew them."""
    rng = np.random.default_rng(args.seed)
    _catalog(rng)
    for index in range(args.customers):
        yield _Customer(index, rng, args.days, args.seed, args.activity)


def play_campaign(
    sim_dir: Path,
    groups: dict[str, str],
    outcome_days: int,
    name: str,
    out_dir: Path | None = None,
) -> tuple[Path, Path, list[CampaignTruth]]:
    """Orders in the outcome window for `groups` (customer_id -> 'treatment' / 'holdout').

    Returns the events file, the truth file and the truth rows. Same inputs, same files.
    """
    args = load_args(sim_dir)
    out_dir = out_dir or sim_dir / f"campaign_{name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    start = datetime.fromisoformat(args.end)
    catalog = _catalog(np.random.default_rng(args.seed))
    by_category = {c: [p for p in catalog if p.category == c] for c in CATEGORIES}
    events_path, truth_path = out_dir / "events.jsonl", out_dir / "truth.csv"
    truth_rows = []
    with events_path.open("w") as events, truth_path.open("w", newline="") as truth_file:
        writer = csv.writer(truth_file)
        writer.writerow(["customer_id", "group", "response", "base_probability", "true_effect"])
        for customer in customers(args):
            group = groups.get(customer.customer_id)
            if group is None:
                continue
            # replayed only up to the first signed-in event (the stream is generated lazily)
            reachable = any(
                "userId" in e for e in customer.events(start - timedelta(days=args.days), by_category)
            )
            truth = response(customer, outcome_days, reachable)
            truth_rows.append(truth)
            writer.writerow(
                [customer.customer_id, group, truth.response, f"{truth.base_probability:.6f}",
                 f"{truth.true_effect:.6f}"]
            )  # fmt: skip
            draw = random.Random(f"{args.seed}:{customer.customer_id}:{name}")
            chance = truth.base_probability + (truth.true_effect if group == "treatment" else 0.0)
            if draw.random() < chance:
                events.write(
                    json.dumps(_order(customer, draw, start, outcome_days, name, by_category)) + "\n"
                )
    return events_path, truth_path, truth_rows


def _order(customer, draw: random.Random, start: datetime, outcome_days: int, name, by_category) -> dict:
    at = start + timedelta(seconds=draw.uniform(0, outcome_days * 86400 - 1))
    weights = customer.category_weights
    category = draw.choices(CATEGORIES, weights=list(weights))[0]
    product = draw.choice(by_category[category])
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": str(uuid.UUID(int=draw.getrandbits(128), version=4)),
        "userId": customer.customer_id,
        "anonymousId": customer.anonymous_id,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "context": {"campaign": {"source": "pulse", "medium": "email", "name": name}},
        "properties": {
            "order_id": f"o-{customer.customer_id}-{name}",
            "total": product.price,
            "revenue": product.price,
            "currency": "USD",
            "products": [_product_props(product) | {"quantity": 1}],
        },
    }
