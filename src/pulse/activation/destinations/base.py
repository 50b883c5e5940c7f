"""The one small interface every destination implements, and the HTTP plumbing they share.

A destination turns a batch of `Record`s into the vendor's request(s) and the vendor's answer into one
`Outcome` per record. It makes ONE attempt: retrying (429 / 5xx / network, honouring `Retry-After`),
rate limiting, concurrency and splitting a refused batch to isolate bad rows are the delivery loop's job
(`pulse.activation.delivery.deliver`), so every destination gets them the same way. A new destination is
one module: subclass `Destination`, set `kind`, `max_batch` and `modes`, implement `send`, register it in
`pulse.activation.destinations.DESTINATIONS`.

Used by batch syncs (`pulse.activation.engine`) and by real-time triggers alike.
"""

from __future__ import annotations

import email.utils
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import httpx

Operation = Literal["add", "remove", "update"]
# `events` mode: the Segment-style event each change becomes.
EVENT_NAMES = {"add": "Audience Entered", "update": "Audience Entered", "remove": "Audience Exited"}


@dataclass(frozen=True, slots=True)
class Record:
    """One change for one customer. `key` is its idempotency key: the same change always carries the
    same key (across retries, splits and a rerun after a crash), a later change a new one."""

    key: str
    customer_id: str
    operation: Operation
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """What the destination said about one record."""

    key: str
    accepted: bool
    http_status: int | None = None
    error: str | None = None  # the destination's reason, verbatim where it gives one
    attempts: int = 1
    last_attempt_at: datetime | None = None


class DeliveryError(Exception):
    """A whole request failed. `retryable` for 429, 5xx and network errors; otherwise a deterministic
    refusal of the batch (which the delivery loop splits to find the rows at fault)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class ConfigError(ValueError):
    """A destination's settings or secrets are missing or invalid."""


class RateLimiter:
    """Token bucket shared by the threads sending to one destination: at most `rate` requests a second,
    bursts of `burst`. `rate` None or 0: unlimited."""

    def __init__(self, rate: float | None, burst: int = 1):
        self.rate = rate or 0.0
        self.capacity = max(1.0, float(burst))
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        if not self.rate:
            return
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds (RFC 9110: delta-seconds or an HTTP date); None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def secret(spec: Mapping[str, str] | None, what: str) -> str:
    """A secret named in YAML by where it lives, never by value: `{env: NAME}` or
    `{airflow_conn: CONN_ID}` (the connection's password, else its extra's `token`)."""
    if not spec:
        raise ConfigError(f"{what}: no credentials configured (credentials: {{env: NAME}})")
    if "env" in spec:
        value = os.environ.get(spec["env"])
        if not value:
            raise ConfigError(f"{what}: environment variable {spec['env']} is not set")
        return value
    if "airflow_conn" in spec:
        from airflow.sdk import BaseHook  # only in deployments that keep secrets in Airflow

        conn = BaseHook.get_connection(spec["airflow_conn"])
        value = conn.password or (conn.extra_dejson or {}).get("token")
        if not value:
            raise ConfigError(f"{what}: Airflow connection {spec['airflow_conn']} has no password or token")
        return value
    raise ConfigError(f"{what}: credentials must name `env` or `airflow_conn`, got {sorted(spec)}")


class Destination(ABC):
    """One configured destination. Thread-safe `send` (the delivery loop calls it from several threads)."""

    kind: ClassVar[str]
    max_batch: ClassVar[int]  # the vendor's documented limit of rows per request
    modes: ClassVar[frozenset[str]] = frozenset({"mirror", "upsert", "events"})
    default_rate: ClassVar[float | None] = None  # requests per second when the sync sets none

    def __init__(self, options: Mapping[str, Any], *, rate: float | None = None, concurrency: int = 1):
        self.options = dict(options)
        self.concurrency = max(1, concurrency)
        self.limiter = RateLimiter(rate if rate is not None else self.default_rate, burst=self.concurrency)

    # Fields of which a record needs at least one (the ids the vendor matches on); rows with none are
    # skipped as 'no identifier'. Empty: customer_id is enough.
    identifiers: ClassVar[tuple[str, ...]] = ()

    def start(self, run_id: str) -> None:  # noqa: B027 - optional hook
        """Called once before a run's first batch."""

    def finish(self, ok: bool) -> None:  # noqa: B027 - optional hook
        """Called once after a run's last batch (ok: no error stopped the run)."""

    @abstractmethod
    def send(self, batch: Sequence[Record], batch_key: str, mode: str) -> list[Outcome]:
        """Deliver `batch` in one attempt; one Outcome per record (in any order) for rows the destination
        answered about. Raise DeliveryError when the request as a whole failed."""

    def preview(self, batch: Sequence[Record], batch_key: str, mode: str) -> dict[str, Any]:
        """The request `send` would make (method, url, headers without secrets, body), for dry runs."""
        return {"records": [{"key": r.key, "operation": r.operation, **r.fields} for r in batch]}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class HttpDestination(Destination):
    """A destination over HTTP: one pooled httpx client per destination, sized to its concurrency."""

    timeout: ClassVar[float] = 30.0

    def __init__(self, options: Mapping[str, Any], *, rate: float | None = None, concurrency: int = 1):
        super().__init__(options, rate=rate, concurrency=concurrency)
        self.client = httpx.Client(
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; transport errors, 429 and 5xx become retryable DeliveryErrors."""
        self.limiter.acquire()
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise DeliveryError(f"{type(error).__name__}: {error}", retryable=True) from error
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryError(
                f"HTTP {response.status_code}: {response.text[:500]}",
                status=response.status_code,
                retryable=True,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        return response

    def close(self) -> None:
        self.client.close()


def all_accepted(batch: Sequence[Record], status: int | None) -> list[Outcome]:
    return [Outcome(r.key, True, status) for r in batch]
