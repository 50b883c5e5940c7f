"""A realistic, deterministic e-commerce event stream with planted truth.

Each customer has latent traits that drive what they do:
- `engagement`: how often they visit (sessions per day),
- `conversion`: the chance a visit ends in an order,
- an intent multiplier that drifts day to day (an AR(1) in log space), so recent behaviour says more than
  old behaviour,
- for some customers a churn day, after which they barely come back.

Visits show the intent: high-intent visitors view more products, add to cart more and click more emails.
Visits before a customer first signs in are anonymous (only an `anonymousId`), as on a real site.

Orders per day are a Poisson thinning of visits, so the simulator knows each customer's exact probability
of ordering in any window given its latent path: `1 - exp(-sum(rate * conversion))`. It writes that for the
label window (the last `label_days` days) to `truth.csv`, so a model can be compared with the truth.
"""

from __future__ import annotations

import csv
import json
import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

CATEGORIES = ("apparel", "shoes", "beauty", "home", "electronics", "sports", "books", "toys")
CHANNELS = (  # (utm_source, utm_medium, weight)
    ("google", "cpc", 0.30),
    ("facebook", "paid_social", 0.15),
    ("newsletter", "email", 0.15),
    ("direct", "none", 0.30),
    ("instagram", "social", 0.10),
)
DEVICES = ("mobile", "desktop", "tablet")
CHURN_SHARE = 0.3
EXISTING_SHARE = 0.7  # customers already active when the simulated window opens
EMAIL_WEEKDAY = 1  # campaigns go out on Tuesdays
ARGUMENTS_FILE = "simulation.json"


@dataclass(frozen=True)
class Product:
    product_id: str
    category: str
    name: str
    price: float


@dataclass
class SimulationResult:
    events_path: Path
    truth_path: Path
    n_events: int
    n_customers: int
    start: datetime
    end: datetime


def _catalog(rng: np.random.Generator, n_products: int = 200) -> list[Product]:
    products = []
    for i in range(n_products):
        category = CATEGORIES[i % len(CATEGORIES)]
        price = round(float(np.clip(rng.lognormal(3.4, 0.6), 4, 400)), 2)
        products.append(Product(f"p{i:04d}", category, f"{category.title()} item {i}", price))
    return products


def default_end() -> datetime:
    """Midnight UTC today: simulated data ends where real data would."""
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, today.day, tzinfo=UTC)


def simulate(
    out_dir: Path,
    customers: int = 2000,
    days: int = 60,
    seed: int = 7,
    end: datetime | date | None = None,
    label_days: int = 14,
    progress: Callable[[int], None] | None = None,
    activity: float = 1.0,
) -> SimulationResult:
    """Write `events.jsonl` and `truth.csv` into `out_dir`. Same arguments, same files.

    `activity` scales every customer's visit rate (0.2 = a fifth of the visits, so fewer events per
    customer, as the warehouse benchmark wants); the truth file follows the scaled rates.
    """
    end_at = _as_midnight(end) if end is not None else default_end()
    start_at = end_at - timedelta(days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    events_path, truth_path = out_dir / "events.jsonl", out_dir / "truth.csv"

    rng = np.random.default_rng(seed)
    catalog = _catalog(rng)
    by_category = {c: [p for p in catalog if p.category == c] for c in CATEGORIES}
    label_start_day = days - label_days

    n_events = 0
    with events_path.open("w") as events_file, truth_path.open("w", newline="") as truth_file:
        truth = csv.writer(truth_file)
        truth.writerow(["customer_id", "true_probability", "window_start", "window_end", "churned"])
        for index in range(customers):
            customer = _Customer(index, rng, days, seed, activity)
            for event in customer.events(start_at, by_category):
                events_file.write(json.dumps(event, separators=(",", ":")) + "\n")
                n_events += 1
            expected_orders = float(np.sum(customer.order_rate[label_start_day:]))
            truth.writerow(
                [
                    customer.customer_id,
                    f"{1 - math.exp(-expected_orders):.6f}",
                    (start_at + timedelta(days=label_start_day)).isoformat(),
                    end_at.isoformat(),
                    int(customer.churn_day < days),
                ]
            )
            if progress:
                progress(1)
    # What rebuilds these customers (events/campaign_sim.py plays a campaign on them after `end`).
    arguments = {
        "customers": customers,
        "days": days,
        "seed": seed,
        "activity": activity,
        "end": end_at.isoformat(),
    }
    (out_dir / ARGUMENTS_FILE).write_text(json.dumps(arguments))
    return SimulationResult(events_path, truth_path, n_events, customers, start_at, end_at)


def _as_midnight(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date() if value.tzinfo else value.date()
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


class _Customer:
    """One simulated customer: latent traits, then the events they cause, in time order."""

    def __init__(
        self, index: int, rng: np.random.Generator, days: int, seed: int, activity: float = 1.0
    ) -> None:
        self.customer_id = f"c{index:06d}"
        self.days = days
        # Most customers predate the window; the rest arrive during it.
        self.first_day = 0 if rng.random() < EXISTING_SHARE else int(rng.integers(1, max(2, int(days * 0.7))))
        self.engagement = float(rng.gamma(1.5, 0.4))
        self.conversion = float(rng.beta(0.8, 6.0))
        self.churn_day = (
            int(rng.integers(self.first_day + 1, days + 45)) if rng.random() < CHURN_SHARE else 10**6
        )
        self.email_affinity = float(rng.beta(2, 5))
        weights = rng.dirichlet(np.full(len(CATEGORIES), 0.5))
        self.category_weights = weights
        self.device = DEVICES[int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
        self.signup_propensity = float(rng.uniform(0.2, 0.6))
        # Daily intent drift (log AR(1)); churn cuts visits to 5%.
        z = np.zeros(days)
        z[0] = rng.normal(0, 0.4)
        shocks = rng.normal(0, 0.05, days)
        for d in range(1, days):
            z[d] = 0.97 * z[d - 1] + shocks[d]
        multiplier = np.exp(z)
        day_index = np.arange(days)
        alive = np.where(day_index >= self.churn_day, 0.05, 1.0)
        active = (day_index >= self.first_day).astype(float)
        weekend = np.where((day_index % 7) >= 5, 1.2, 1.0)
        self.visit_rate = self.engagement * multiplier * alive * active * weekend
        if activity != 1.0:
            self.visit_rate = self.visit_rate * activity
        self.conv_rate = np.clip(self.conversion * multiplier, 0, 0.9)
        self.order_rate = self.visit_rate * self.conv_rate  # expected orders per day (Poisson thinning)
        # Per-customer stream so one customer's draws never shift another's.
        self.rng = random.Random(f"{seed}:{index}")
        self.np_rng = np.random.default_rng([seed, index])
        self.anonymous_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
        self.email = f"{self.customer_id}@example.com"

    def _message_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def events(self, start_at: datetime, by_category: dict[str, list[Product]]) -> Iterator[dict[str, Any]]:
        signed_in = False
        order_number = 0
        for day in range(self.first_day, self.days):
            day_start = start_at + timedelta(days=day)
            day_events: list[dict[str, Any]] = []
            if signed_in and (day_start.weekday() == EMAIL_WEEKDAY):
                day_events.extend(self._email(day_start, day))
            n_visits = int(self.np_rng.poisson(self.visit_rate[day]))
            # Visits start in time order (so a sign-in is seen by later visits) and end before midnight.
            hours = sorted(min(21.5, max(0.0, self.rng.gauss(14.5, 4.0))) for _ in range(n_visits))
            for hour in hours:
                session, signed_in, order_number = self._visit(
                    day_start + timedelta(hours=hour), day, by_category, signed_in, order_number
                )
                day_events.extend(session)
            day_events.sort(key=lambda e: e["timestamp"])
            yield from day_events

    def _base(self, kind: str, at: datetime, signed_in: bool, context: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": kind,
            "messageId": self._message_id(),
            "anonymousId": self.anonymous_id,
            "timestamp": at.isoformat().replace("+00:00", "Z"),
            "context": context,
        }
        if signed_in:
            event["userId"] = self.customer_id
        return event

    def _track(self, event_name: str, at: datetime, signed_in: bool, context: dict, **props: Any) -> dict:
        event = self._base("track", at, signed_in, context)
        event["event"] = event_name
        event["properties"] = props
        return event

    def _email(self, day_start: datetime, day: int) -> list[dict[str, Any]]:
        intent = float(self.conv_rate[day]) if day < self.churn_day else 0.0
        if self.rng.random() > self.email_affinity * (0.5 + intent * 3):
            return []
        at = day_start + timedelta(hours=9, minutes=self.rng.randint(0, 600))
        context = {"campaign": {"source": "newsletter", "medium": "email", "name": f"weekly_{day // 7}"}}
        opened = self._track("Email Opened", at, True, context, campaign_id=f"weekly_{day // 7}")
        events = [opened]
        if self.rng.random() < min(0.9, 0.15 + intent * 2.5):
            at2 = at + timedelta(minutes=self.rng.randint(1, 30))
            events.append(self._track("Email Clicked", at2, True, context, campaign_id=f"weekly_{day // 7}"))
        return events

    def _visit(
        self,
        at: datetime,
        day: int,
        by_category: dict[str, list[Product]],
        signed_in: bool,
        order_number: int,
    ) -> tuple[list[dict[str, Any]], bool, int]:
        rng = self.rng
        conv = float(self.conv_rate[day])
        source, medium, _ = rng.choices(CHANNELS, weights=[c[2] for c in CHANNELS])[0]
        context = {
            "campaign": {"source": source, "medium": medium},
            "device": {"type": self.device},
            "page": {"url": "https://shop.example.com/", "referrer": f"https://{source}.example/"},
        }
        events: list[dict[str, Any]] = []

        def tick(seconds_max: int = 90) -> datetime:
            nonlocal at
            at = at + timedelta(seconds=rng.randint(5, seconds_max))
            return at

        page = self._base("page", at, signed_in, context)
        page["name"] = "Home"
        page["properties"] = {"path": "/", "url": "https://shop.example.com/"}
        events.append(page)

        will_order = rng.random() < conv
        wants_account = will_order or rng.random() < self.signup_propensity * 0.5
        if not signed_in and wants_account:
            signed_in = True
            identify = self._base("identify", tick(), True, context)
            identify["traits"] = {"email": self.email, "first_name": f"Customer {self.customer_id[1:]}"}
            events.append(identify)
            events.append(self._track("Signed In", tick(), True, context, method="password"))

        n_views = 1 + int(self.np_rng.poisson(0.5 + 25 * conv))
        viewed: list[Product] = []
        for _ in range(n_views):
            category = CATEGORIES[int(self.np_rng.choice(len(CATEGORIES), p=self.category_weights))]
            product = rng.choice(by_category[category])
            viewed.append(product)
            events.append(
                self._track("Product Viewed", tick(), signed_in, context, **_product_props(product))
            )

        cart: list[Product] = []
        add_chance = min(0.6, 0.01 + 1.5 * conv)
        for product in viewed:
            if rng.random() < add_chance:
                cart.append(product)
                events.append(
                    self._track(
                        "Product Added", tick(), signed_in, context, quantity=1, **_product_props(product)
                    )
                )
        if will_order and not cart:
            cart.append(viewed[0])
            events.append(
                self._track(
                    "Product Added", tick(), signed_in, context, quantity=1, **_product_props(viewed[0])
                )
            )
        if len(cart) > 1 and rng.random() < 0.25:
            removed = cart.pop()
            events.append(
                self._track("Product Removed", tick(), signed_in, context, **_product_props(removed))
            )

        if cart and (will_order or rng.random() < 0.3):
            total = round(sum(p.price for p in cart), 2)
            events.append(
                self._track("Checkout Started", tick(), signed_in, context, value=total, currency="USD")
            )
            if will_order:
                order_number += 1
                events.append(
                    self._track(
                        "Order Completed",
                        tick(300),
                        signed_in,
                        context,
                        order_id=f"o-{self.customer_id}-{order_number:04d}",
                        total=total,
                        revenue=total,
                        currency="USD",
                        products=[_product_props(p) | {"quantity": 1} for p in cart],
                    )
                )
        return events, signed_in, order_number


def _product_props(product: Product) -> dict[str, Any]:
    return {
        "product_id": product.product_id,
        "category": product.category,
        "name": product.name,
        "price": product.price,
    }
