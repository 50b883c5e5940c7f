"""One typed settings object for Pulse, read from the environment and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EVENT_MAX_AGE_DAYS = 5 * 365
DEFAULT_WRITE_KEY = "pulse-dev-write-key"  # fine on loopback; `pulse serve` refuses it elsewhere


class Settings(BaseSettings):
    """Pulse's public settings (see `.env.example`)."""

    model_config = SettingsConfigDict(env_prefix="PULSE_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="Warehouse URL (postgresql://...). Unset: an embedded PostgreSQL under PULSE_HOME.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; when set, the Feast online store is Redis instead of Postgres."
    )
    home: Path = Field(default=Path(".pulse"), description="Working directory for local state.")
    write_key: str = Field(
        default=DEFAULT_WRITE_KEY,
        description="The collector's write key: public (it sits in web pages), one per source.",
    )
    read_key: str | None = Field(
        default=None,
        description="Bearer token for the scoring API (GET /v1/scores); unset: nobody can read scores.",
    )
    model_signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key fitted models are signed with and verified by before loading (32+ characters). "
        "Unset: a key generated into PULSE_HOME/model_signing.key.",
    )
    model_signing_key_previous: SecretStr | None = Field(
        default=None, description="The key before a rotation: models it signed still load until retrained."
    )
    landed_retention_days: int = Field(
        default=30,
        ge=1,
        description="Days loaded event files stay under PULSE_HOME/landing/loaded/ (to re-run a window), then deleted.",
    )
    project_dir: Path = Field(
        default=PROJECT_ROOT, description="Where dags/, dbt_project/ and feature_repo/ live."
    )
    feast_project: str = Field(
        default="pulse", description="Feast project name (a namespace in the registry)."
    )
    label_days: int = Field(default=14, description="Purchase-propensity label window in days.")
    phone_region: str = Field(
        default="US", description="Region assumed for phone numbers written without a country code (E.164)."
    )
    event_max_age_days: int = Field(
        default=DEFAULT_EVENT_MAX_AGE_DAYS,
        gt=0,
        description="Events older than this (or over a day ahead of receipt) are rejected: event_time_out_of_range.",
    )
    keep_full_ip: bool = Field(
        default=False,
        description="Store context.ip as sent; by default it is truncated (IPv4 /24, IPv6 /48).",
    )
    collector_ack_timeout: float = Field(
        default=10.0, description="Seconds the collector waits for a COMMIT before answering 503."
    )
    consent_default: Literal["deny", "allow"] = Field(
        default="deny",
        description="Syncs and triggers requiring consent: customers with no consent signal are skipped (deny) or sent (allow).",
    )
    activation_max_attempts: int = Field(
        default=6, ge=1, description="Attempts per request to a destination (429, 5xx, network errors)."
    )
    activation_max_delay: float = Field(
        default=60.0, gt=0, description="Longest wait between attempts, Retry-After included (seconds)."
    )
    activation_max_row_failures: int = Field(
        default=3, ge=1, description="Runs a rejected row is carried into before it is dead-lettered."
    )
    lock_timeout: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds a step waits for the marts while a build rewrites them, before failing (PULSE_LOCK_TIMEOUT).",
    )
    triggers_enabled: bool = Field(
        default=True,
        description="`pulse serve` runs the trigger worker (`pulse triggers run`: evaluates committed events, "
        "fires due timers) as a child process; false where the worker runs on its own (compose).",
    )
    triggers_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU priority of the trigger worker below the collector's (nice; 0: the same).",
    )
    triggers_poll_seconds: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description="How often the trigger worker reads new events and looks for due timers.",
    )
    ingest_schedule: str = Field(
        default="*/5 * * * *",
        description="When the pulse_ingest DAG loads landed files (cron, UTC; each run loads its interval's).",
    )
    train_schedule: str = Field(
        default="0 4 * * 1", description="When the pulse_train DAG trains (cron, UTC; default Mondays 04:00)."
    )
    dbt_execution_mode: Literal["watcher", "local"] = Field(
        default="watcher",
        description="How the transform DAG runs dbt (cosmos): `watcher`, one dbt build that each model's "
        "task watches (needs a triggerer; not under `dag.test()`); `local`, a dbt build per model task.",
    )
    dbt_invocation_mode: Literal["dbt_runner", "subprocess"] = Field(
        default="dbt_runner",
        description="How a transform task starts dbt: in the task's process (`dbt_runner`) or as a `dbt` command.",
    )

    @property
    def home_dir(self) -> Path:
        path = self.home.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def campaigns_dir(self) -> Path:
        """What marketers edit: `audiences/`, `syncs/` and `triggers/` (YAML, validated, synced to tables)."""
        return self.project_dir / "campaigns"

    @property
    def landing_dir(self) -> Path:
        """Files dropped here are what the scheduled ingest task loads."""
        path = self.home_dir / "landing"
        path.mkdir(parents=True, exist_ok=True)
        return path


def get_settings() -> Settings:
    """Fresh settings each call: cheap, and tests or tasks that change the environment see it."""
    return Settings()
