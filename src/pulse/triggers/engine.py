"""Evaluation on the stream: entries and cancellations, decided once and written durably.

`TriggerEngine.process(records)` takes committed events (row dicts keyed by `EVENT_COLUMNS`) and, in one
transaction:

1. remembers cancelling events (`activation.trigger_signals`) and cancels the pending timers they end:
   same customer, event time after the entry and no later than the end of the wait. A cancelling event
   for a timer that has already fired (it arrived after the grace period) is logged as
   `late_cancel_ignored`.
2. decides each entry: property filters, then consent, conditions, frequency cap, holdout, and writes one
   timer row per (trigger, customer, entry event) with its outcome (`pending`, `suppressed`, or
   `cancelled` when its cancelling event was already seen), plus a log row in `activation.trigger_events`.

Everything is keyed by `trigger:customer:entry event id`, so evaluating the same events again (a replay
after a crash) changes nothing. `TriggerHook` is the collector's post-commit hook: it keeps only events
some trigger names and hands them to a thread, so neither the request nor the writer waits on it.

Consent for real-time decisions: the entry event's own `context.consent.categoryPreferences` (the
freshest signal, free to read); when the event carries none, the customer's row in
`marts.customer_consent` (if that mart exists); otherwise `PULSE_CONSENT_DEFAULT` (deny), as for syncs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pulse.ddl import ensure_tables
from pulse.triggers.conditions import flatten
from pulse.triggers.definitions import (
    CUSTOMER_FIELDS,
    SCORE_FIELDS,
    TriggerDefinition,
    holdout_bucket,
)

log = logging.getLogger(__name__)

MAX_ENTRY_LAG = timedelta(hours=1)  # entries older than wait + grace + this are stale: never fired
CATCH_UP_MARGIN = timedelta(seconds=60)  # replayed before the checkpoint on start (plus the ack timeout)
DEFINITIONS_REFRESH = 2.0  # seconds between re-reads of activation.trigger_definitions
_decode = msgspec.json.Decoder().decode
TRIGGER_TABLES = tuple(
    f"activation.trigger_{name}" for name in ("definitions", "timers", "events", "signals", "stream", "lift")
)


def ensure_trigger_tables(url: str) -> None:
    ensure_tables(url, "triggers.sql", TRIGGER_TABLES)


def _json(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str | bytes) and value:
        try:
            parsed = _decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event_consent(context: Mapping[str, Any]) -> dict[str, bool]:
    """Segment's consent object: `context.consent.categoryPreferences` ({category: bool})."""
    consent = context.get("consent")
    prefs = consent.get("categoryPreferences") if isinstance(consent, Mapping) else None
    if not isinstance(prefs, Mapping):
        return {}
    return {str(k).lower(): v for k, v in prefs.items() if isinstance(v, bool)}


@dataclass
class Trigger:
    definition: TriggerDefinition
    status: str  # active / paused

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass
class Decision:
    timer_key: str
    trigger: str
    customer_id: str
    entry_event_id: str
    entry_at: datetime
    wait_until: datetime
    fire_at: datetime
    group: str
    status: str  # pending / suppressed / cancelled
    action: str  # the log row: entered / suppressed_* / cancelled
    reason: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    cancel_event_id: str | None = None


@dataclass
class EngineStats:
    batches: int = 0
    events: int = 0
    entries: int = 0
    cancels: int = 0
    failures: int = 0
    last_error: str | None = None


class TriggerEngine:
    def __init__(self, url: str, consent_default: str = "deny", consumer: str = "collector"):
        self.url = url
        self.consent_default = consent_default
        self.consumer = consumer
        self.stats = EngineStats()
        self._triggers: list[Trigger] = []
        self._loaded_at = 0.0
        self._conn: psycopg.Connection | None = None
        self._has_consent_mart: bool | None = None

    # -- definitions ------------------------------------------------------------------------------
    def triggers(self, refresh: bool = False) -> list[Trigger]:
        if refresh or time.monotonic() - self._loaded_at > DEFINITIONS_REFRESH:
            rows = self.connection().execute(
                "select definition, status from activation.trigger_definitions order by trigger_name"
            )
            triggers = []
            for document, status in rows.fetchall():
                try:
                    triggers.append(Trigger(TriggerDefinition.from_document(document), status))
                except ValueError as error:  # edited by hand into something invalid: skip it, loudly
                    log.error("trigger definition %s is invalid: %s", document.get("name"), error)
            self._triggers, self._loaded_at = triggers, time.monotonic()
        return self._triggers

    def interesting(self) -> frozenset[str]:
        """Event names some trigger enters on or cancels on."""
        names: set[str] = set()
        for trigger in self.triggers():
            names.add(trigger.definition.entry.event)
            names |= trigger.definition.cancel_events
        return frozenset(names)

    def connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the stream ---------------------------------------------------------------------------------
    def process(self, records: Sequence[Mapping[str, Any]], now: datetime | None = None) -> int:
        """Evaluate committed events; returns how many entries were decided (new ones only)."""
        triggers = self.triggers()
        if not triggers or not records:
            return 0
        now = now or datetime.now(UTC)
        entry_by_event: dict[str, list[Trigger]] = defaultdict(list)
        cancel_by_event: dict[str, list[Trigger]] = defaultdict(list)
        for trigger in triggers:
            entry_by_event[trigger.definition.entry.event].append(trigger)
            for cancel_event in trigger.definition.cancel_events:
                cancel_by_event[cancel_event].append(trigger)

        entries: list[tuple[Trigger, Mapping[str, Any]]] = []
        signals: list[Mapping[str, Any]] = []
        for record in records:
            name, customer = record.get("event_name"), record.get("user_id")
            if not customer or not isinstance(name, str) or not isinstance(record.get("event_at"), datetime):
                continue  # anonymous: no one to contact
            if name in cancel_by_event:
                signals.append(record)
            for trigger in entry_by_event.get(name, ()):
                props = flatten(_json(record.get("properties")))
                if all(c.holds(props) for c in trigger.definition.entry.where):
                    entries.append((trigger, record))
        if not entries and not signals:
            return 0

        conn = self.connection()
        with conn.transaction():
            decided = self._decide(conn, entries, signals, now) if entries else 0
            if signals:
                self._cancel(conn, signals, cancel_by_event, now)
            self._checkpoint(conn, min(_utc(r["received_at"]) for r in records if r.get("received_at")))
        self.stats.batches += 1
        self.stats.events += len(records)
        self.stats.entries += decided
        return decided

    def _checkpoint(self, conn: psycopg.Connection, at: datetime | None) -> None:
        if at is None:
            return
        conn.execute(
            "insert into activation.trigger_stream (consumer, processed_at) values (%s, %s) "
            "on conflict (consumer) do update set processed_at = "
            "greatest(trigger_stream.processed_at, excluded.processed_at)",
            (self.consumer, at),
        )

    def mark_idle(self) -> None:
        """Nothing is waiting: everything committed a few seconds ago has been evaluated."""
        self._checkpoint(self.connection(), datetime.now(UTC) - timedelta(seconds=5))

    # -- cancellations -----------------------------------------------------------------------------
    def _cancel(
        self,
        conn: psycopg.Connection,
        signals: list[Mapping[str, Any]],
        cancel_by_event: Mapping[str, list[Trigger]],
        now: datetime,
    ) -> None:
        rows = [(r["event_id"], r["user_id"], r["event_name"], _utc(r["event_at"])) for r in signals]
        with conn.cursor() as cur:
            cur.executemany(
                "insert into activation.trigger_signals (event_id, customer_id, event_name, event_at) "
                "values (%s, %s, %s, %s) on conflict (event_id) do nothing",
                rows,
            )
            for event_id, customer, name, event_at in rows:
                names = [t.name for t in cancel_by_event[name]]
                cur.execute(
                    """update activation.trigger_timers
                          set status = 'cancelled', done_at = %(now)s, cancel_event_id = %(event_id)s
                        where customer_id = %(customer)s and trigger_name = any(%(names)s)
                          and status = 'pending' and entry_at < %(at)s and wait_until >= %(at)s
                    returning timer_key, trigger_name, entry_event_id""",
                    {"now": now, "event_id": event_id, "customer": customer, "names": names, "at": event_at},
                )
                cancelled = cur.fetchall()
                cur.execute(
                    """select timer_key, trigger_name, entry_event_id, done_at from activation.trigger_timers
                        where customer_id = %(customer)s and trigger_name = any(%(names)s)
                          and status in ('fired', 'held_out') and entry_at < %(at)s and wait_until >= %(at)s""",
                    {"customer": customer, "names": names, "at": event_at},
                )
                late = cur.fetchall()
                log_rows = [
                    (k, t, customer, e, "cancelled", f"{name} at {event_at.isoformat()}", event_id)
                    for k, t, e in cancelled
                ] + [
                    (
                        k,
                        t,
                        customer,
                        e,
                        "late_cancel_ignored",
                        f"{name} at {event_at.isoformat()} arrived after the timer was due "
                        f"(and the grace period): it had fired at {done.isoformat()}",
                        event_id,
                    )
                    for k, t, e, done in late
                ]
                self._log(cur, log_rows)
                self.stats.cancels += len(cancelled)

    @staticmethod
    def _log(cur: psycopg.Cursor, rows: list[tuple]) -> None:
        if rows:
            cur.executemany(
                "insert into activation.trigger_events "
                "(timer_key, trigger_name, customer_id, entry_event_id, action, reason, event_id) "
                "values (%s, %s, %s, %s, %s, %s, %s) on conflict (timer_key, action) do nothing",
                rows,
            )

    # -- entries -------------------------------------------------------------------------------------
    def _decide(
        self,
        conn: psycopg.Connection,
        entries: list[tuple[Trigger, Mapping[str, Any]]],
        signals: list[Mapping[str, Any]],
        now: datetime,
    ) -> int:
        keys = [f"{t.name}:{r['user_id']}:{r['event_id']}" for t, r in entries]
        with conn.cursor() as cur:
            cur.execute("select timer_key from activation.trigger_timers where timer_key = any(%s)", (keys,))
            seen = {row[0] for row in cur.fetchall()}
        todo = [(k, t, r) for k, (t, r) in zip(keys, entries, strict=True) if k not in seen]
        if not todo:
            return 0
        customers = sorted({r["user_id"] for _, _, r in todo})
        wanted = set().union(*(t.definition.features for _, t, _ in todo))
        batch = self._batch_features(conn, customers, wanted)
        consent_rows = self._consent_rows(conn, customers, todo)
        caps = self._cap_history(conn, todo)
        prior_signals = self._signals(conn, customers, signals)

        decisions = []
        for key, trigger, record in todo:
            decision = self._decision(key, trigger, record, batch, consent_rows, caps, prior_signals, now)
            if decision.status in ("pending", "cancelled") and decision.action != "suppressed_cap":
                caps[(trigger.name, decision.customer_id)].append(decision.entry_at)
            decisions.append(decision)

        with conn.cursor() as cur:
            cur.executemany(
                """insert into activation.trigger_timers (timer_key, trigger_name, customer_id,
                       entry_event_id, entry_at, wait_until, fire_at, "group", status, payload,
                       done_at, cancel_event_id, error)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   on conflict (timer_key) do nothing""",
                [
                    (
                        d.timer_key,
                        d.trigger,
                        d.customer_id,
                        d.entry_event_id,
                        d.entry_at,
                        d.wait_until,
                        d.fire_at,
                        d.group,
                        d.status,
                        Jsonb(d.payload),
                        None if d.status == "pending" else now,
                        d.cancel_event_id,
                        d.reason if d.status == "suppressed" else None,
                    )
                    for d in decisions
                ],
            )
            self._log(
                cur,
                [
                    (
                        d.timer_key,
                        d.trigger,
                        d.customer_id,
                        d.entry_event_id,
                        d.action,
                        d.reason,
                        d.entry_event_id,
                    )
                    for d in decisions
                ],
            )
        return len(decisions)

    def _decision(
        self,
        key: str,
        trigger: Trigger,
        record: Mapping[str, Any],
        batch: Mapping[str, Mapping[str, Any]],
        consent_rows: Mapping[str, Mapping[str, bool]],
        caps: Mapping[tuple[str, str], list[datetime]],
        prior_signals: Mapping[str, list[tuple[str, str, datetime]]],
        now: datetime,
    ) -> Decision:
        d = trigger.definition
        customer, entry_at = record["user_id"], _utc(record["event_at"])
        wait = d.wait.duration if d.wait else timedelta(0)
        grace = d.wait.grace if d.wait else timedelta(0)
        group = "holdout" if holdout_bucket(d.name, customer) < d.holdout_pct else "treatment"
        features = {**batch.get(customer, {}), **(record.get("realtime") or {})}
        decision = Decision(
            key,
            d.name,
            customer,
            record["event_id"],
            entry_at,
            entry_at + wait,
            entry_at + wait + grace,
            group,
            "pending",
            "entered",
        )
        decision.payload = self._payload(d, record, features, decision)

        def suppress(action: str, reason: str) -> Decision:
            decision.status, decision.action, decision.reason = "suppressed", action, reason
            return decision

        if trigger.status != "active":
            return suppress("suppressed_paused", "the trigger is paused")
        if entry_at < now - wait - grace - MAX_ENTRY_LAG:
            return suppress(
                "suppressed_condition", f"entry event is stale (older than the wait + {MAX_ENTRY_LAG})"
            )
        if d.consent:
            category = d.consent.lower()
            own = event_consent(_json(record.get("context")))
            if category in own:
                allowed, source = own[category], "the event's consent"
            elif category in consent_rows.get(customer, {}):
                allowed, source = consent_rows[customer][category], "marts.customer_consent"
            else:
                allowed, source = self.consent_default == "allow", "no consent signal (default)"
            if not allowed:
                return suppress("suppressed_consent", f"no consent for {category!r} ({source})")
        failed = [str(c) for c in d.conditions if not c.holds(features)]
        if failed:
            return suppress("suppressed_condition", "condition not met: " + "; ".join(failed))
        if d.frequency_cap:
            window_start = entry_at - d.frequency_cap.per
            recent = [at for at in caps.get((d.name, customer), []) if window_start < at <= entry_at]
            if len(recent) >= d.frequency_cap.max:
                return suppress(
                    "suppressed_cap",
                    f"{len(recent)} entries within {d.frequency_cap.per} (cap {d.frequency_cap.max})",
                )
        for event_id, name, at in prior_signals.get(customer, []):
            if name in d.cancel_events and entry_at < at <= decision.wait_until:
                decision.status, decision.action = "cancelled", "cancelled"
                decision.cancel_event_id, decision.reason = event_id, f"{name} at {at.isoformat()}"
                return decision
        return decision

    @staticmethod
    def _payload(
        d: TriggerDefinition, record: Mapping[str, Any], features: Mapping[str, Any], decision: Decision
    ) -> dict[str, Any]:
        props = None
        sources = {
            "customer_id": decision.customer_id,
            "trigger": d.name,
            "entry_event_id": decision.entry_event_id,
            "entry_event": d.entry.event,
            "entry_at": decision.entry_at.isoformat(),
            "due_at": decision.fire_at.isoformat(),
            "group": decision.group,
        }
        out: dict[str, Any] = {}
        for key, source in d.payload.items():
            if source in sources:
                out[key] = sources[source]
            elif source.startswith("properties."):
                props = props if props is not None else flatten(_json(record.get("properties")))
                out[key] = props.get(source.removeprefix("properties."))
            else:
                value = features.get(source)
                out[key] = value.isoformat() if isinstance(value, datetime) else value
        return out

    # -- what decisions read ---------------------------------------------------------------------------
    def _batch_features(
        self, conn: psycopg.Connection, customers: list[str], wanted: set[str]
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = defaultdict(dict)
        scores = wanted & SCORE_FIELDS
        if scores and self._exists(conn, "ml.scores"):
            models = sorted({f.rsplit("_", 1)[0] for f in scores})
            rows = conn.execute(
                """select distinct on (customer_id, model_name) customer_id, model_name, score, percentile
                     from ml.scores where customer_id = any(%s) and model_name = any(%s)
                    order by customer_id, model_name, as_of desc""",
                (customers, models),
            ).fetchall()
            for customer, model, score, percentile in rows:
                out[customer][f"{model}_score"] = score
                out[customer][f"{model}_percentile"] = percentile
        columns = sorted(wanted & CUSTOMER_FIELDS)
        if columns and self._exists(conn, "marts.customers"):
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(
                    f"select customer_id, {', '.join(columns)} from marts.customers where customer_id = any(%s)",
                    (customers,),
                )
                for row in cur.fetchall():
                    out[row.pop("customer_id")].update(row)
        return out

    @staticmethod
    def _exists(conn: psycopg.Connection, table: str) -> bool:
        row = conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()
        return bool(row and row[0])

    def _consent_rows(
        self, conn: psycopg.Connection, customers: list[str], todo: Iterable[tuple[str, Trigger, Mapping]]
    ) -> dict[str, dict[str, bool]]:
        """marts.customer_consent for customers whose entry event carries no consent object."""
        need = sorted(
            {
                r["user_id"]
                for _, t, r in todo
                if t.definition.consent and not event_consent(_json(r.get("context")))
            }
        )
        if not need:
            return {}
        if self._has_consent_mart is None or not self._has_consent_mart:
            self._has_consent_mart = self._exists(conn, "marts.customer_consent")
        if not self._has_consent_mart:
            return {}
        out: dict[str, dict[str, bool]] = defaultdict(dict)
        try:
            with conn.transaction():  # a savepoint: the mart's columns are activation's to define
                rows = conn.execute(
                    "select customer_id, category, is_granted from marts.customer_consent "
                    "where customer_id = any(%s)",
                    (need,),
                ).fetchall()
        except psycopg.errors.UndefinedColumn:
            log.warning(
                "marts.customer_consent has no (customer_id, category, is_granted); using the default"
            )
            return {}
        for customer, category, granted in rows:
            if isinstance(granted, bool):
                out[customer][str(category).lower()] = granted
        return out

    @staticmethod
    def _cap_history(
        conn: psycopg.Connection, todo: list[tuple[str, Trigger, Mapping[str, Any]]]
    ) -> dict[tuple[str, str], list[datetime]]:
        history: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        capped = [(t, r) for _, t, r in todo if t.definition.frequency_cap]
        if not capped:
            return history
        longest = max(t.definition.frequency_cap.per for t, _ in capped)  # type: ignore[union-attr]
        oldest = min(_utc(r["event_at"]) for _, r in capped) - longest
        rows = conn.execute(
            """select trigger_name, customer_id, entry_at from activation.trigger_timers
                where customer_id = any(%s) and trigger_name = any(%s) and entry_at > %s
                  and status in ('pending', 'fired', 'held_out', 'failed')""",
            (sorted({r["user_id"] for _, r in capped}), sorted({t.name for t, _ in capped}), oldest),
        ).fetchall()
        for trigger, customer, at in rows:
            history[(trigger, customer)].append(at)
        return history

    @staticmethod
    def _signals(
        conn: psycopg.Connection, customers: list[str], batch_signals: list[Mapping[str, Any]]
    ) -> dict[str, list[tuple[str, str, datetime]]]:
        """Cancelling events already seen (or in this batch) for these customers."""
        out: dict[str, list[tuple[str, str, datetime]]] = defaultdict(list)
        for event_id, customer, name, at in conn.execute(
            "select event_id, customer_id, event_name, event_at from activation.trigger_signals "
            "where customer_id = any(%s)",
            (customers,),
        ).fetchall():
            out[customer].append((event_id, name, at))
        for r in batch_signals:
            out[r["user_id"]].append((r["event_id"], r["event_name"], _utc(r["event_at"])))
        return out

    # -- recovery ----------------------------------------------------------------------------------------
    def catch_up(
        self, margin: timedelta = CATCH_UP_MARGIN, chunk: int = 5_000, since: datetime | None = None
    ) -> int:
        """Evaluate again the collector's events committed since the checkpoint less `margin` (or since
        `since`): what a crash may have left unevaluated. Idempotent. Returns the number of events read."""
        conn = self.connection()
        if since is None:
            row = conn.execute(
                "select processed_at from activation.trigger_stream where consumer = %s", (self.consumer,)
            ).fetchone()
            if row is None:  # first start: the stream begins now, history is not replayed
                self._checkpoint(conn, datetime.now(UTC))
                return 0
            since = row[0] - margin
        names = sorted(self.interesting())
        if not names:
            return 0
        read = 0
        with (
            psycopg.connect(self.url) as reader,
            reader.cursor(name="pulse_trigger_catch_up", row_factory=dict_row) as cur,
        ):
            cur.itersize = chunk
            cur.execute(
                """select event_id, event_type, event_name, user_id, anonymous_id, event_at, received_at,
                          properties, context
                     from raw.events
                    where loaded_at >= %s and event_name = any(%s) and source = 'collector'
                    order by loaded_at""",
                (since, names),
            )
            while rows := cur.fetchmany(chunk):
                self.process(rows)
                read += len(rows)
        log.info("triggers: re-evaluated %d events committed since %s", read, since.isoformat())
        return read

    def prune_signals(self) -> None:
        longest = max(
            (
                t.definition.wait.duration + t.definition.wait.grace
                for t in self.triggers()
                if t.definition.wait
            ),
            default=timedelta(0),
        )
        self.connection().execute(
            "delete from activation.trigger_signals where event_at < %s",
            (datetime.now(UTC) - longest - MAX_ENTRY_LAG,),
        )


class TriggerHook:
    """The collector's post-commit hook: keeps the events some trigger names, evaluates them on its own
    thread. If that thread falls behind by `max_queued` batches, further batches are not queued but
    re-read from raw.events (`catch_up`) once it has caught up, so nothing is lost either way."""

    def __init__(self, engine: TriggerEngine, realtime=None, max_queued: int = 10_000):
        self.engine = engine
        self.realtime = realtime  # RealtimePusher, for real-time features in conditions
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue(maxsize=max_queued)
        self._names: frozenset[str] = frozenset()
        self._replay_from: datetime | None = None  # events not evaluated (queue full, failure) since
        self._replay_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pulse-triggers", daemon=True)

    def __call__(self, records: list[dict[str, Any]]) -> None:
        names = self._names
        mine = [r for r in records if r.get("event_name") in names and r.get("user_id")]
        if not mine:
            return
        if self.realtime is not None:
            for r in mine:
                r["realtime"] = self.realtime.snapshot(r["user_id"])
        try:
            self._queue.put_nowait(mine)
        except queue.Full:
            self._missed(mine)

    def _missed(self, records: list[dict[str, Any]]) -> None:
        times = [_utc(r["received_at"]) for r in records if isinstance(r.get("received_at"), datetime)]
        since = min(times, default=datetime.now(UTC)) - timedelta(seconds=5)
        with self._replay_lock:
            self._replay_from = since if self._replay_from is None else min(self._replay_from, since)

    def start(self) -> TriggerHook:
        try:
            self.engine.catch_up()
            self._names = self.engine.interesting()
        except psycopg.Error as error:
            log.error("triggers: could not start (%s); evaluation retries in the background", error)
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)
        self.engine.close()

    def _run(self) -> None:
        while True:
            try:
                batch = self._queue.get(timeout=1.0)
            except queue.Empty:
                batch = []
            if batch is None:
                return
            try:
                self._names = self.engine.interesting()
                if batch:
                    while len(batch) < 5_000:  # take what else is waiting: one transaction for all
                        try:
                            more = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if more is None:
                            self._queue.put(None)
                            break
                        batch.extend(more)
                    self.engine.process(batch)
                elif self._replay_from is not None:
                    with self._replay_lock:
                        since, self._replay_from = self._replay_from, None
                    self.engine.catch_up(since=since)
                else:
                    self.engine.mark_idle()
            except Exception as error:  # noqa: BLE001 - never take the collector down; replay on restart
                self.engine.stats.failures += 1
                self.engine.stats.last_error = f"{type(error).__name__}: {error}"
                log.exception("trigger evaluation failed; these events are re-read from raw.events")
                if batch:
                    self._missed(batch)
                self.engine.close()
                time.sleep(1.0)
