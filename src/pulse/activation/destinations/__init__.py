"""Destinations: one module each, behind `base.Destination`. `create(kind, options)` builds one."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from pulse.activation.destinations.base import (
    ConfigError,
    DeliveryError,
    Destination,
    Operation,
    Outcome,
    Record,
)

# kind -> "module:class"; imported on use so a sync pays only for its own destination.
DESTINATIONS = {
    "webhook": "pulse.activation.destinations.webhook:WebhookDestination",
    "file_drop": "pulse.activation.destinations.file_drop:FileDropDestination",
    "meta": "pulse.activation.destinations.meta:MetaDestination",
    "klaviyo": "pulse.activation.destinations.klaviyo:KlaviyoDestination",
    "braze": "pulse.activation.destinations.braze:BrazeDestination",
}


def destination_class(kind: str) -> type[Destination]:
    try:
        module, name = DESTINATIONS[kind].split(":")
    except KeyError:
        raise ConfigError(f"unknown destination {kind!r}; known: {', '.join(sorted(DESTINATIONS))}") from None
    return getattr(import_module(module), name)


def create(
    kind: str, options: Mapping[str, Any], *, rate: float | None = None, concurrency: int = 1
) -> Destination:
    return destination_class(kind)(options, rate=rate, concurrency=concurrency)


__all__ = [
    "DESTINATIONS",
    "ConfigError",
    "DeliveryError",
    "Destination",
    "Operation",
    "Outcome",
    "Record",
    "create",
    "destination_class",
]
