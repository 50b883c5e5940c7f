"""Planted campaign effects: play a campaign on simulated customers and know its true effect on each.

Every simulated customer answers a campaign (an email) in one of four ways. The type follows from
latent traits that also drive what the event stream shows, averaged over the last `HABIT_DAYS` days
(the customer's habits, which 30 days of visits, product views and orders reveal), never from the
stream itself, and the model never sees it:
- sure thing: usually buys within the window anyway (usual purchase probability >= 0.5); no change;
- persuadable: a browser who rarely buys: the more they visit, the lower their conversion and the
  further from buying anyway, the more the message raises their probability (by up to 0.6);
- do-not-disturb: a regular buyer (usual probability around 0.35) who already comes on their own; the
  message puts some off (up to half their probability), more the closer they are to that peak;
- lost cause: everyone else (an effect under 0.02 either way), and whoever never signed in (no email
  address to send to); nothing changes.

Why habits and not email affinity: an earlier version keyed the types on `email_affinity`, which a few
weekly emails show too weakly (R^2 0.15 from 30 days of behaviour, against 0.7-0.8 for visit rate and
conversion), and on the last day's rates (blurred by the daily drift); a boosted-tree regression fitted
to the true effects themselves then reached only 0.53x their Qini, so no uplift model could do better.

`play_campaign` rebuilds the customers of a simulation (same arguments, same customers), and for each
member of an audience draws whether they order in the outcome window after the audience was chosen:
with the customer's base probability (its purchase rate on the last simulated day, held over the
window), plus the true effect if treated. It writes the orders as events (for `pulse ingest`), and
ordinary orders on the day after the window (so the data shows the window closed), and the truth per
customer (type, base probability, true effect) for comparing models with it.
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

HABIT_DAYS = 30  # the traits that decide a customer's type are averaged over these last days
SURE_THING_PROBABILITY = 0.5  # usual purchase probability over the window from which nothing changes
PUT_OFF_PEAK, PUT_OFF_WIDTH = 0.35, 0.15  # regular buyers around this usual probability are put off most
PUT_OFF_DROP = 0.5  # share of their probability the message takes away, at the peak
MAX_LIFT = 0.6  # a persuadable's lift in purchase probability, at best
BROWSING_VISITS = 1.0  # visits per day from which a browser is fully persuadable
CONVERSION_CEILING = 0.15  # conversion per visit above which the message adds nothing
MIN_EFFECT = 0.02  # smaller effects (either way) count as none: a lost cause


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
    """The customer's type and true effect of a campaign over `outcome_days` after the simulated end.

    The effect is a continuous function of the habits (no cliff at a type's edge that behaviour could
    only blur): a lift for browsers who rarely buy, fading to none at the sure things, minus a put-off
    that peaks among regular buyers and fades to none on either side.
    """
    base = 1 - math.exp(-float(customer.order_rate[-1]) * outcome_days)
    habit = slice(-HABIT_DAYS, None)
    usual = 1 - math.exp(-float(np.mean(customer.order_rate[habit])) * outcome_days)
    visits = float(np.mean(customer.visit_rate[habit]))
    conversion = float(np.mean(customer.conv_rate[habit]))
    if not reachable:  # never signed in: no email address to send the campaign to
        return CampaignTruth(customer.customer_id, "lost_cause", base, 0.0)
    if usual >= SURE_THING_PROBABILITY:
        return CampaignTruth(customer.customer_id, "sure_thing", base, 0.0)
    lift = (
        MAX_LIFT
        * min(1.0, visits / BROWSING_VISITS)
        * max(0.0, 1 - conversion / CONVERSION_CEILING)
        * (1 - usual / SURE_THING_PROBABILITY)
    )
    put_off = PUT_OFF_DROP * base * max(0.0, 1 - abs(usual - PUT_OFF_PEAK) / PUT_OFF_WIDTH)
    effect = min(lift, 1 - base) - put_off
    if effect >= MIN_EFFECT:
        return CampaignTruth(customer.customer_id, "persuadable", base, effect)
    if effect <= -MIN_EFFECT:
        return CampaignTruth(customer.customer_id, "do_not_disturb", base, effect)
    return CampaignTruth(customer.customer_id, "lost_cause", base, 0.0)


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
                order = _order(customer, draw, start, 0, outcome_days, name, by_category)
                events.write(json.dumps(order) + "\n")
            # The day after the window, ordinary orders again: the data then shows the window closed.
            if draw.random() < 1 - math.exp(-float(customer.order_rate[-1])):
                order = _order(customer, draw, start, outcome_days, 1, name, by_category, after=True)
                events.write(json.dumps(order) + "\n")
    return events_path, truth_path, truth_rows


def _order(
    customer, draw: random.Random, start: datetime, from_day: int, days: int, name, by_category, after=False
) -> dict:
    """An order at a random time of days [from_day, from_day + days) after `start`."""
    at = start + timedelta(days=from_day, seconds=draw.uniform(0, days * 86400 - 1))
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
        "context": {} if after else {"campaign": {"source": "pulse", "medium": "email", "name": name}},
        "properties": {
            "order_id": f"o-{customer.customer_id}-{name}" + ("-after" if after else ""),
            "total": product.price,
            "revenue": product.price,
            "currency": "USD",
            "products": [_product_props(product) | {"quantity": 1}],
        },
    }
