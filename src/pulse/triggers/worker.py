"""The trigger worker (`pulse triggers run`): evaluation of committed events and dispatch of due timers, in
a process of its own, so the collector's request path only commits events and shares no interpreter lock
with either.

Two threads: the evaluation loop (this module) reads what the collector committed since the saved
position (`pulse.triggers.stream`) every `PULSE_TRIGGERS_POLL_SECONDS` and hands it to the engine; the
dispatcher (`pulse.triggers.dispatch`) fires due timers. Both only read and write the warehouse, so a
kill -9 loses nothing: on start the worker reads again from the last saved position, and due timers are
claimed by whichever dispatcher runs.

Real-time features in conditions (`events_30m`, `cart_value`, ...) come from the worker's own aggregator
(`pulse.features.realtime.RealtimeAggregator`) over every collector event it reads: while some active
trigger names one, the stream reads all events with a user id, not only the trigger's event names. Like
the collector's, the aggregator starts empty: after a restart the 30-minute windows refill.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pulse.config import Settings
from pulse.db import engine, warehouse_url
from pulse.triggers.dispatch import Dispatcher
from pulse.triggers.engine import TriggerEngine, ensure_trigger_tables
from pulse.triggers.stream import EventStream, StreamNotReady

if TYPE_CHECKING:
    from pulse.features.realtime import RealtimeAggregator

log = logging.getLogger(__name__)

PRUNE_EVERY = 600.0  # seconds between deletions of cancelling events too old to cancel anything
PARENT_ENV = "PULSE_TRIGGERS_PARENT_PID"  # set by `pulse serve`: the worker stops when that process is gone


class TriggerWorker:
    def __init__(self, settings: Settings, consumer: str = "worker", dispatch: bool = True):
        self.url = warehouse_url(settings)
        self.poll_seconds = settings.triggers_poll_seconds
        self.engine = TriggerEngine(self.url, consent_default=settings.consent_default, consumer=consumer)
        self.stream = EventStream(self.url, consumer)
        self.dispatcher = (
            Dispatcher(engine(settings), poll_seconds=settings.triggers_poll_seconds) if dispatch else None
        )
        self.realtime: RealtimeAggregator | None = None
        self.stopping = threading.Event()
        parent = os.environ.get(PARENT_ENV, "")
        self.parent_pid = int(parent) if parent.isdigit() else None

    # -- evaluation ------------------------------------------------------------------------------------
    def evaluate_once(self) -> int:
        """Evaluate what was committed since the saved position; returns the events read (0 while
        another worker of the same consumer evaluates)."""
        if not self.stream.acquire():
            return 0
        if self.engine.needs_realtime():
            if self.realtime is None:
                from pulse.features.realtime import RealtimeAggregator  # pandas: only when needed

                self.realtime = RealtimeAggregator()
            return self.stream.read(None, self._with_realtime)
        self.realtime = None
        return self.stream.read(self.engine.interesting(), self._process)

    def _process(self, rows: list[dict[str, Any]], position: str | None) -> None:
        self.engine.process(rows, position=position)

    def _with_realtime(self, rows: list[dict[str, Any]], position: str | None) -> None:
        assert self.realtime is not None
        self.realtime.add_all(rows)
        names, now = self.engine.interesting(), datetime.now(UTC)
        mine = [r for r in rows if r["event_name"] in names]
        for r in mine:
            r["realtime"] = self.realtime.features(r["user_id"], now)
        self.engine.process(mine, position=position)

    # -- the process --------------------------------------------------------------------------------------
    def run(self) -> None:
        """Evaluate and dispatch until `stop()` (or the parent process named by PULSE_TRIGGERS_PARENT_PID
        exits). Raises StreamNotReady when the warehouse needs `pulse up` first."""
        ensure_trigger_tables(self.url)
        if self.dispatcher is not None:
            self.dispatcher.start()
        pruned = 0.0
        try:
            while not self.stopping.is_set():
                read = 0
                try:
                    read = self.evaluate_once()
                    if time.monotonic() - pruned > PRUNE_EVERY:
                        self.engine.prune_signals()
                        pruned = time.monotonic()
                except StreamNotReady:
                    raise
                except Exception as error:  # noqa: BLE001 - durable state: read again from the position
                    self.engine.stats.failures += 1
                    self.engine.stats.last_error = f"{type(error).__name__}: {error}"
                    log.exception("trigger evaluation failed; reading again from the saved position")
                    self.engine.close()
                    self.stream.close()
                    self.stopping.wait(1.0)
                if self.parent_pid is not None and os.getppid() != self.parent_pid:
                    log.warning("triggers: the collector that started this worker is gone; stopping")
                    break
                if read < self.stream.chunk:
                    self.stopping.wait(self.poll_seconds)
        finally:
            self.close()

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.close()
        self.stream.close()
        self.engine.close()
