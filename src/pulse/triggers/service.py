"""Triggers inside the collector: the post-commit hook (evaluation) and the dispatcher (firing)."""

from __future__ import annotations

import logging

from pulse.config import Settings
from pulse.db import engine, warehouse_url
from pulse.triggers.dispatch import Dispatcher
from pulse.triggers.engine import TriggerEngine, TriggerHook, ensure_trigger_tables

log = logging.getLogger(__name__)


class TriggerService:
    """`hook` goes in the collector's hook list (after the real-time features); `start` before serving
    (creates the tables, re-evaluates what a crash left, starts both threads), `close` on shutdown."""

    def __init__(self, settings: Settings, realtime=None):
        self.settings = settings
        self.url = warehouse_url(settings)
        self.engine = TriggerEngine(self.url, consent_default=settings.consent_default)
        self.hook = TriggerHook(self.engine, realtime=realtime)
        self.dispatcher = Dispatcher(engine(settings), poll_seconds=settings.triggers_poll_seconds)

    def start(self) -> TriggerService:
        ensure_trigger_tables(self.url)
        self.hook.start()
        self.dispatcher.start()
        return self

    def close(self) -> None:
        self.dispatcher.close()
        self.hook.close()
