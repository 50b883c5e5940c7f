"""Delivering batches to a destination: retries, rate limit, concurrency, and isolating bad rows.

- 429, 5xx and network errors are retried up to `max_attempts` with exponential backoff and full jitter;
  a `Retry-After` from the destination is waited out first (capped at `max_delay`), so a rate limit does
  not burn the retries.
- Any other refusal of a whole batch (a deterministic 4xx) is not retried: the batch is split in halves
  until the rows at fault stand alone, each recorded with the destination's reason; the rest goes through.
- A row the destination never answered about (retries exhausted) is rejected with the last error, so it is
  carried into the next run; nothing is silently skipped.
- Up to `destination.concurrency` batches are in flight; their requests share the destination's rate
  limiter. `on_batch` runs in the caller's thread, in completion order: that is where the engine
  checkpoints each batch.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pulse.activation.destinations.base import DeliveryError, Destination, Outcome, Record


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt `attempt + 1`."""
        if retry_after is not None:
            return min(self.max_delay, retry_after) + random.uniform(0, self.base_delay / 4)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass
class DeliveryStats:
    requests: int = 0
    retried: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, requests: int = 0, retried: int = 0) -> None:
        with self.lock:
            self.requests += requests
            self.retried += retried


def send_batch(
    destination: Destination,
    batch: Sequence[Record],
    batch_key: str,
    mode: str,
    policy: RetryPolicy,
    stats: DeliveryStats,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome]:
    """One Outcome per record of `batch`, after retries and splitting."""
    attempt = 0
    while True:
        attempt += 1
        stats.add(requests=1)
        try:
            answered = destination.send(batch, batch_key, mode)
        except DeliveryError as error:
            now = datetime.now(UTC)
            if error.retryable and attempt < policy.max_attempts:
                stats.add(retried=1)
                sleep(policy.backoff(attempt, error.retry_after))
                continue
            if error.retryable or len(batch) == 1:
                return [Outcome(r.key, False, error.status, str(error), attempt, now) for r in batch]
            half = len(batch) // 2
            return [
                *send_batch(destination, batch[:half], f"{batch_key}.0", mode, policy, stats, sleep),
                *send_batch(destination, batch[half:], f"{batch_key}.1", mode, policy, stats, sleep),
            ]
        now = datetime.now(UTC)
        by_key = {o.key: o for o in answered}
        outcomes = []
        for record in batch:
            outcome = by_key.get(record.key) or Outcome(
                record.key, False, None, "the destination did not answer about this row"
            )
            outcome.attempts, outcome.last_attempt_at = attempt, now
            outcomes.append(outcome)
        return outcomes


def deliver(
    destination: Destination,
    batches: Iterable[tuple[str, Sequence[Record]]],
    mode: str,
    on_batch: Callable[[Sequence[Record], list[Outcome]], None],
    policy: RetryPolicy | None = None,
    stats: DeliveryStats | None = None,
) -> DeliveryStats:
    """Send every (batch_key, batch) with up to `destination.concurrency` in flight; memory stays bounded
    (batches are drawn from the iterable only as slots free up)."""
    policy = policy or RetryPolicy()
    stats = stats or DeliveryStats()
    with ThreadPoolExecutor(max_workers=destination.concurrency, thread_name_prefix="pulse-deliver") as pool:
        pending: dict[Future, Sequence[Record]] = {}
        iterator = iter(batches)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < destination.concurrency:
                try:
                    key, batch = next(iterator)
                except StopIteration:
                    exhausted = True
                    break
                pending[pool.submit(send_batch, destination, batch, key, mode, policy, stats)] = batch
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                batch = pending.pop(future)
                on_batch(batch, future.result())
    return stats
