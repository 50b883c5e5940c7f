"""The prediction tasks Pulse trains: what is predicted, over which horizon, for whom."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pulse.config import Settings

PROPENSITY = "purchase_propensity"  # the main task: the likely-buyers audience and the truth comparison


@dataclass(frozen=True)
class PredictionTask:
    name: str
    kind: Literal["classification", "regression"]
    target: Literal["any_order", "no_order", "revenue"]
    horizon_days: int
    description: str
    feature_service: str
    buyers_only: bool = False  # population: customers with an order before the snapshot

    @property
    def selection_metric(self) -> str:
        return "auc" if self.kind == "classification" else "r2"


def default_tasks(settings: Settings) -> list[PredictionTask]:
    return [
        PredictionTask(
            PROPENSITY,
            "classification",
            "any_order",
            settings.label_days,
            f"Orders in the next {settings.label_days} days",
            "purchase_propensity_v1",
        ),
        PredictionTask(
            "purchase_7d",
            "classification",
            "any_order",
            7,
            "Orders in the next 7 days",
            "purchase_propensity_v1",
        ),
        PredictionTask(
            "purchase_30d",
            "classification",
            "any_order",
            30,
            "Orders in the next 30 days",
            "purchase_propensity_v1",
        ),
        PredictionTask(
            "churn_90d",
            "classification",
            "no_order",
            90,
            "Past buyers with no order in the next 90 days",
            "churn_v1",
            buyers_only=True,
        ),
        PredictionTask("value_90d", "regression", "revenue", 90, "Revenue in the next 90 days", "value_v1"),
    ]


def task_by_name(name: str, settings: Settings) -> PredictionTask:
    for task in default_tasks(settings):
        if task.name == name:
            return task
    raise KeyError(f"no prediction task {name!r}")
