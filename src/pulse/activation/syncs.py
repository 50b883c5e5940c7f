"""Syncs as code: `campaigns/syncs/*.yml`, one audience -> one destination each, validated with pydantic
and synced to `activation.sync_definitions`.

    name: likely_buyers_webhook
    audience: likely_buyers
    mode: mirror                  # mirror (add / remove) | upsert (attributes) | events (entered / exited)
    destination:
      kind: webhook               # webhook | file_drop | meta | klaviyo | braze
      url: https://hooks.example.com/pulse
      signing_secret: {env: PULSE_WEBHOOK_SECRET}   # secrets: {env: NAME} or {airflow_conn: ID}, never values
    fields:                       # destination field: column of audience_members / audience_inputs
      email_sha256: email_sha256
      score: score
    consent: [marketing]          # categories every customer sent must have granted
    batch_size: 1000              # at most the destination's documented limit
    rate_per_second: 10           # requests per second (default: the destination's)
    concurrency: 2                # requests in flight

Only the treatment group of an audience is ever read; the holdout never leaves Pulse.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pulse.activation.destinations import ConfigError, destination_class
from pulse.campaign_files import load_folder, store_definitions
from pulse.config import Settings
from pulse.db import engine

COLUMN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SECRET_KEYS = re.compile(r"(secret|token|password|api_key|apikey|key)$", re.IGNORECASE)


class SyncDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    audience: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    mode: Literal["mirror", "upsert", "events"]
    destination: dict[str, Any]
    fields: dict[str, str] = Field(default_factory=dict)
    consent: list[str] = Field(default_factory=list)
    batch_size: int | None = Field(default=None, gt=0)
    rate_per_second: float | None = Field(default=None, gt=0)
    concurrency: int = Field(default=1, ge=1, le=32)
    enabled: bool = True
    description: str = ""

    @field_validator("fields")
    @classmethod
    def _columns(cls, fields: dict[str, str]) -> dict[str, str]:
        for target, column in fields.items():
            if not COLUMN.match(column):
                raise ValueError(f"field {target!r}: {column!r} is not a column name")
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$", target):
                raise ValueError(f"field name {target!r} is not allowed")
        return fields

    @field_validator("consent")
    @classmethod
    def _categories(cls, categories: list[str]) -> list[str]:
        for c in categories:
            if not re.match(r"^[A-Za-z][A-Za-z0-9_ -]{0,62}$", c):
                raise ValueError(f"consent category {c!r} is not allowed")
        return sorted(set(categories))

    @model_validator(mode="after")
    def _destination(self) -> SyncDefinition:
        kind = self.destination.get("kind")
        if not isinstance(kind, str):
            raise ValueError("destination.kind is required")
        cls = destination_class(kind)
        if self.mode not in cls.modes:
            raise ValueError(f"destination {kind} supports modes {sorted(cls.modes)}, not {self.mode}")
        if self.batch_size and self.batch_size > cls.max_batch:
            raise ValueError(f"batch_size {self.batch_size} exceeds {kind}'s limit of {cls.max_batch} rows")
        _no_inline_secrets(self.destination, "destination")
        return self

    @property
    def kind(self) -> str:
        return self.destination["kind"]

    @property
    def options(self) -> dict[str, Any]:
        return {k: v for k, v in self.destination.items() if k != "kind"}


def _no_inline_secrets(value: Any, where: str) -> None:
    """A key that names a secret must point at the environment or Airflow, never hold the value."""
    if isinstance(value, dict):
        for k, v in value.items():
            if SECRET_KEYS.search(str(k)) and not (isinstance(v, dict) and set(v) <= {"env", "airflow_conn"}):
                raise ValueError(
                    f"{where}.{k}: secrets come from {{env: NAME}} or {{airflow_conn: ID}}, not the file"
                )
            _no_inline_secrets(v, f"{where}.{k}")


class SyncConfigError(ValueError):
    """A sync file is invalid; the message names the file and the field."""


def syncs_dir(settings: Settings) -> Path:
    return settings.campaigns_dir / "syncs"


def load_syncs(folder: Path) -> list[SyncDefinition]:
    return load_folder(folder, SyncDefinition, SyncConfigError, "sync", also_invalid=(ConfigError, TypeError))


def store_syncs(syncs: list[SyncDefinition], settings: Settings) -> None:
    """Make activation.sync_definitions exactly these syncs."""
    rows = [
        {"sync_name": s.name, "audience_name": s.audience, "destination": s.kind, "mode": s.mode,
         "definition": s.model_dump()}
        for s in syncs
    ]  # fmt: skip
    with engine(settings).begin() as conn:
        store_definitions(conn, "activation.sync_definitions", "sync_name", rows, jsonb={"definition"})
