"""`pulse serve` with triggers on: the trigger worker (`pulse triggers run`) as a child process beside the
collector, restarted if it exits. The compose stack runs the worker as a service of its own instead
(with its own least-privilege login) and the collector with PULSE_TRIGGERS_ENABLED=false."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading

from pulse.triggers.worker import PARENT_ENV

log = logging.getLogger(__name__)

RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # after a worker exit; the last repeats


class WorkerSupervisor:
    def __init__(self, command: list[str] | None = None):
        self.command = command or [sys.executable, "-m", "pulse.cli", "triggers", "run"]
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="pulse-trigger-worker", daemon=True)

    def start(self) -> WorkerSupervisor:
        self._spawn()
        self._thread.start()
        return self

    def _spawn(self) -> None:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        self.process = subprocess.Popen(self.command, env=env)

    def _supervise(self) -> None:
        exits = 0
        while not self._stopping.is_set():
            assert self.process is not None
            code = self.process.wait()
            if self._stopping.is_set():
                return
            delay = RESTART_DELAYS[min(exits, len(RESTART_DELAYS) - 1)]
            exits += 1
            log.error("trigger worker exited with %s; starting it again in %g s", code, delay)
            if self._stopping.wait(delay):
                return
            self._spawn()

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._thread.join(timeout)
