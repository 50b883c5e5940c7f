"""Firing due timers: claim, send to the trigger's destination, record, in one transaction.

`Dispatcher.run_once` claims due `pending` timers (`fire_at <= now()`) with `FOR UPDATE SKIP LOCKED`, so
any number of dispatchers (trigger workers, restarts) never claim the same timer; the rows stay locked
while their batch is sent and are marked in the same transaction: one statement per batch marks every
timer and writes its log row, whatever the outcomes (set-based: arrays in, no statement per timer). Holdout timers are marked `held_out`
and sent nowhere; timers of a paused or deleted trigger `suppressed`; treatment timers go to the
destination (activation's `Destination` interface: one request per trigger and batch, each row with its
timer key as idempotency key) and become `fired` or, after `max_attempts`, `failed`.

A kill -9 while a batch is in flight rolls the transaction back: the timers are pending again and the
next dispatcher sends them again with the same idempotency keys, so the destination applies each once
(at-least-once delivery, exactly-once effect where the destination honours the key, as activation's
webhook contract says it must). Outside that window each timer is sent exactly once.

The destination outcome goes to activation's run log: one `activation.sync_runs` row (`kind =
'trigger'`) per trigger and dispatcher session (rolled over hourly), one `activation.sync_records` row
per firing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa

from pulse.triggers.definitions import TriggerDefinition

log = logging.getLogger(__name__)

RUN_ROLLOVER_SECONDS = 3600.0
MAX_ATTEMPTS = 5  # sends of one timer before it is `failed`
RETRY_DELAY = timedelta(seconds=5)  # first retry; doubles per attempt

_CLAIM = sa.text(
    """select timer_key, trigger_name, customer_id, entry_event_id, "group", payload::text as payload, attempts
         from activation.trigger_timers
        where status = 'pending' and fire_at <= :now
        order by fire_at
        limit :limit
        for update skip locked"""
)
_DEFINITIONS = sa.text(
    "select trigger_name, definition, status from activation.trigger_definitions "
    "where trigger_name = any(:names)"
)
# Every outcome of a batch in one statement: the timers marked (a retry goes back to pending, later)
# and, by the same statement, their log rows in activation.trigger_events.
_SETTLE = sa.text(
    """with u as (
           select * from unnest(cast(:key as text[]), cast(:status as text[]), cast(:action as text[]),
                                cast(:http as integer[]), cast(:reason as text[]), cast(:delay as float8[]))
               as u(key, status, action, http, reason, delay)
       ), marked as (
           update activation.trigger_timers t
              set status = case when u.status = 'retry' then 'pending' else u.status end,
                  done_at = case when u.status = 'retry' then null else clock_timestamp() end,
                  attempts = t.attempts + (case when u.status in ('fired', 'failed', 'retry') then 1 else 0 end),
                  http_status = u.http,
                  error = case when u.status in ('failed', 'retry') then u.reason end,
                  fire_at = case when u.status = 'retry' then now() + make_interval(secs => u.delay)
                                 else t.fire_at end
             from u where t.timer_key = u.key
           returning t.timer_key, t.trigger_name, t.customer_id, t.entry_event_id, u.status, u.action, u.reason,
                     u.http
       )
       insert into activation.trigger_events (timer_key, trigger_name, customer_id, entry_event_id, action,
              reason, http_status)
       select timer_key, trigger_name, customer_id, entry_event_id, action, reason, http
         from marked where status <> 'retry'
       on conflict (timer_key, action) do nothing"""
)
_decode = msgspec.json.Decoder().decode


@dataclass
class DispatcherStats:
    cycles: int = 0
    fired: int = 0
    held_out: int = 0
    suppressed: int = 0
    failed: int = 0
    retried: int = 0
    last_error: str | None = None


def destination_options(definition: TriggerDefinition) -> dict[str, Any]:
    """The activation destination's options: the URL from the environment variable the YAML names."""
    spec = definition.destination
    url = os.environ.get(spec.url_env, "")
    options: dict[str, Any] = {"url": url}
    if spec.secret_env:
        options["signing_secret"] = {"env": spec.secret_env}
    return options


class Dispatcher:
    def __init__(self, engine: sa.Engine, batch_size: int = 1_000, poll_seconds: float = 0.1):
        self.engine = engine
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.stats = DispatcherStats()
        self._destinations: dict[tuple[str, str], Any] = {}
        self._runs: dict[str, tuple[str, float, dict[str, int]]] = {}  # trigger -> run id, started, counts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one cycle ------------------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> int:
        """Claim and settle the due timers (up to batch_size); returns how many were settled."""
        now = now or datetime.now(UTC)
        with self.engine.begin() as conn:
            rows = conn.execute(_CLAIM, {"now": now, "limit": self.batch_size}).mappings().all()
            if not rows:
                return 0
            by_trigger: dict[str, list] = defaultdict(list)
            for row in rows:
                by_trigger[row["trigger_name"]].append(row)
            definitions = {
                name: (document, status)
                for name, document, status in conn.execute(_DEFINITIONS, {"names": list(by_trigger)})
            }
            settled: list[tuple[Any, str, str, int | None, str | None, float]] = []
            for trigger, timers in by_trigger.items():
                settled += self._settle(conn, definitions.get(trigger), timers)
            keys = [(t["timer_key"], *rest) for t, *rest in settled]
            columns = ("key", "status", "action", "http", "reason", "delay")
            conn.execute(_SETTLE, {name: [k[i] for k in keys] for i, name in enumerate(columns)})
        self.stats.cycles += 1
        return len(rows)

    def _settle(self, conn, definition: tuple[dict, str] | None, timers: list) -> list:
        """(timer, status, log action, http status, reason, retry delay) of each timer."""
        if definition is None or definition[1] != "active":
            why = "the trigger was deleted" if definition is None else "the trigger is paused"
            self.stats.suppressed += len(timers)
            return [(t, "suppressed", "suppressed_paused", None, why, 0.0) for t in timers]
        out = [
            (t, "held_out", "held_out", None, "holdout group: recorded, not sent", 0.0)
            for t in timers
            if t["group"] == "holdout"
        ]
        self.stats.held_out += len(out)
        treatment = [t for t in timers if t["group"] == "treatment"]
        if treatment:
            out += self._send(conn, TriggerDefinition.from_document(definition[0]), treatment)
        return out

    def _send(self, conn, definition: TriggerDefinition, timers: list) -> list:
        from pulse.activation.delivery import DeliveryStats, RetryPolicy, send_batch
        from pulse.activation.destinations import Outcome, Record
        from pulse.activation.runlog import record_outcomes

        records = [
            Record(
                t["timer_key"], t["customer_id"], "add", {"event": "Trigger Fired", **_decode(t["payload"])}
            )
            for t in timers
        ]
        stats = DeliveryStats()
        try:
            destination = self._destination(definition)
            batch_key = f"{definition.name}:{records[0].key}:{len(records)}"
            # Few, quick retries here (the rows are locked meanwhile); later ones are rescheduled.
            policy = RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0)
            outcomes = []
            for start in range(0, len(records), destination.max_batch):
                chunk = records[start : start + destination.max_batch]
                # Sent as plain rows (operation, customer_id, idempotency_key, "event": "Trigger Fired",
                # payload): the webhook's `events` mode renders audience changes as Segment track calls.
                outcomes += send_batch(destination, chunk, f"{batch_key}.{start}", "mirror", policy, stats)
        except Exception as error:  # noqa: BLE001 - a missing URL, a bad secret: every row failed alike
            outcomes = [Outcome(r.key, False, None, f"{type(error).__name__}: {error}") for r in records]
        by_key = {o.key: o for o in outcomes}
        run_id = self._run(conn, definition)
        record_outcomes(conn, run_id, records, outcomes)
        out, fired, failed, retried = [], 0, 0, 0
        for t in timers:
            o = by_key[t["timer_key"]]
            if o.accepted:
                out.append((t, "fired", "fired", o.http_status, o.error, 0.0))
                fired += 1
            elif (o.http_status is None or o.http_status == 429 or o.http_status >= 500) and (
                t["attempts"] + 1 < MAX_ATTEMPTS
            ):
                delay = (RETRY_DELAY * 2 ** t["attempts"]).total_seconds()
                out.append((t, "retry", "retry", o.http_status, o.error, delay))
                retried += 1
            else:
                out.append((t, "failed", "failed", o.http_status, o.error, 0.0))
                failed += 1
        counts = self._runs[definition.name][2]
        counts["sent"] += len(records)
        counts["accepted"] += fired
        counts["rejected"] += failed + retried
        counts["retried"] += stats.retried
        conn.execute(
            sa.text(
                "update activation.sync_runs set planned = :sent, adds = :sent, sent = :sent, "
                "accepted = :accepted, rejected = :rejected, retried = :retried where run_id = :run_id"
            ),
            {**counts, "run_id": self._runs[definition.name][0]},
        )
        self.stats.fired += fired
        self.stats.failed += failed
        self.stats.retried += retried
        return out

    def _destination(self, definition: TriggerDefinition):
        from pulse.activation.destinations import create

        options = destination_options(definition)
        cache_key = (definition.name, repr(sorted(options.items())))
        if cache_key not in self._destinations:
            self._destinations[cache_key] = create(definition.destination.type, options, concurrency=1)
        return self._destinations[cache_key]

    def _run(self, conn, definition: TriggerDefinition) -> str:
        """This dispatcher's current run of the trigger in activation.sync_runs (hourly)."""
        from pulse.activation.runlog import RunCounts, finish_run, start_run

        current = self._runs.get(definition.name)
        if current and time.monotonic() - current[1] < RUN_ROLLOVER_SECONDS:
            return current[0]
        if current:
            counts = RunCounts(**{k: current[2][k] for k in ("sent", "accepted", "rejected", "retried")})
            counts.planned = counts.adds = counts.sent
            finish_run(conn, current[0], counts, current[1], time.monotonic())
        run_id = start_run(conn, definition.name, definition.destination.type, "events", kind="trigger")
        self._runs[definition.name] = (run_id, time.monotonic(), defaultdict(int))
        return run_id

    # -- the loop ----------------------------------------------------------------------------------------
    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._loop, name="pulse-trigger-dispatch", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                settled = self.run_once()
            except Exception as error:  # noqa: BLE001 - the timers are durable; try again shortly
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.exception("trigger dispatch failed; retrying")
                settled = 0
                self._stop.wait(1.0)
            if settled < self.batch_size:
                self._stop.wait(self.poll_seconds)

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self.engine.begin() as conn:
            from pulse.activation.runlog import RunCounts, finish_run

            for run_id, started, counts in self._runs.values():
                c = RunCounts(**{k: counts[k] for k in ("sent", "accepted", "rejected", "retried")})
                c.planned = c.adds = c.sent
                finish_run(conn, run_id, c, started, time.monotonic())
        self._runs.clear()
        for destination in self._destinations.values():
            destination.close()
