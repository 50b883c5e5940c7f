"""#13 item 4: writers that cannot die. Against the real PostgreSQL: a request withdrawn while it is
written, a read-only database, a missing table, a revoked privilege, and only raw.events failing. Each
leaves every writer alive, answers 503 (never turns rows into rejects), and /health says so while it
lasts, without the database's error text."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from pulse.collector.process import CollectorProcess
from pulse.collector.writer import GroupCommitWriter, Unavailable
from pulse.events.ingest import parse_payload
from pulse.events.load import ensure_raw_tables

KEY = "security-write-key"


def rows(n: int, event_name: str = "Viewed") -> list[tuple]:
    received = datetime.now(UTC)
    events = [
        {"type": "track", "event": event_name, "userId": f"u{i}", "messageId": uuid.uuid4().hex}
        for i in range(n)
    ]
    return [parse_payload(e, "test", None, received) for e in events]


def execute(url: str, *sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set default_transaction_read_only = off")  # this session mends a read-only database
        for statement in sql:
            conn.execute(statement)


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


def alive(writer: GroupCommitWriter) -> bool:
    return all(thread.is_alive() for thread in writer._threads)


def test_a_request_withdrawn_while_it_is_written_leaves_the_writer_alive(settings):
    url = settings.database_url
    ensure_raw_tables(url)
    # A row PostgreSQL refuses sends the group down the one-by-one path, which answers each request.
    execute(url, "alter table raw.events add constraint no_refused check (event_name <> 'refused')")
    writer = GroupCommitWriter(url, writers=1).start()
    try:
        with psycopg.connect(url) as locker:
            locker.execute("lock table raw.events in access exclusive mode")
            future = writer.submit(rows(2) + rows(1, "refused"), [])
            time.sleep(1)  # the writer has taken the group and waits for the lock
            future.cancel()  # what the handler's timeout does
        later = writer.submit(rows(3), [])
        assert later.result(timeout=30) == 3
        assert alive(writer)
    finally:
        writer.close()


def _role_url(url: str, admin_url: str) -> str:
    role = f"pulse_writer_{uuid.uuid4().hex[:8]}"
    execute(
        admin_url,
        f"create role {role} login",
        f"grant usage on schema raw to {role}",
        f"grant select, insert, update on all tables in schema raw to {role}",
    )
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def _terminate_sessions(url: str) -> None:
    """New sessions pick up `default_transaction_read_only`; end the writer's current ones."""
    name = make_url(url).database
    execute(
        url,
        f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}' "
        "and pid <> pg_backend_pid()",
    )


FAULTS = {
    "read_only": (
        lambda db, role: [f'alter database "{db}" set default_transaction_read_only = on'],
        lambda db, role: [f'alter database "{db}" reset default_transaction_read_only'],
    ),
    "missing_table": (
        lambda db, role: ["alter table raw.events rename to events_moved"],
        lambda db, role: ["alter table raw.events_moved rename to events"],
    ),
    "revoked_privilege": (
        lambda db, role: [f"revoke insert on raw.events from {role}"],
        lambda db, role: [f"grant insert on raw.events to {role}"],
    ),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_environment_faults_answer_unavailable_and_never_make_rejects(settings, fault):
    url = settings.database_url
    ensure_raw_tables(url)
    writer_url = _role_url(url, url)
    db, role = make_url(url).database, make_url(writer_url).username
    break_it, mend_it = FAULTS[fault]
    writer = GroupCommitWriter(writer_url, writers=2).start()
    try:
        assert writer.submit(rows(2), []).result(timeout=30) == 2
        execute(url, *break_it(db, role))
        _terminate_sessions(url)
        for _ in range(4):
            with pytest.raises(Unavailable):
                writer.submit(rows(5), []).result(timeout=30)
        assert alive(writer)
        assert writer.failing(within=30)
        assert count(url, "raw.events_rejected") == 0, "an environment error turned rows into rejects"

        execute(url, *mend_it(db, role))
        _terminate_sessions(url)
        for _ in range(5):  # the first write after the mend may meet a terminated session
            try:
                assert writer.submit(rows(5), []).result(timeout=30) == 5
                break
            except Unavailable:
                time.sleep(0.2)
        else:
            pytest.fail("the writer did not recover")
        assert alive(writer) and not writer.failing(within=30)
        assert count(url, "raw.events") == 7
    finally:
        writer.close()
        execute(url, f'alter database "{db}" reset default_transaction_read_only')
        execute(url, f"drop owned by {role}", f"drop role {role}")  # roles outlive the test database


def test_only_raw_events_failing_answers_503_and_health_says_so(settings, tmp_path):
    url = settings.database_url
    env = {"PULSE_WRITE_KEY": KEY, "PULSE_COLLECTOR_ACK_TIMEOUT": "3"}
    event = {"type": "track", "event": "Viewed", "userId": "u1"}

    def post() -> httpx.Response:
        body = {**event, "messageId": uuid.uuid4().hex}
        return httpx.post(collector.url + "/v1/track", json=body, auth=(KEY, ""), timeout=30)

    def health() -> httpx.Response:
        return httpx.get(collector.url + "/health", timeout=30)

    with CollectorProcess(env, log_path=tmp_path / "collector.log") as collector:
        assert post().status_code == 200 and health().status_code == 200

        execute(url, "alter table raw.events rename to events_moved")
        answer = post()
        assert answer.status_code == 503 and answer.headers["retry-after"]
        sick = health()
        assert sick.status_code == 503 and "writes_failing" in sick.json()["problems"]
        assert "events_moved" not in sick.text and "does not exist" not in sick.text
        assert count(url, "raw.events_rejected") == 0
        execute(url, "alter table raw.events_moved rename to events")
        assert post().status_code == 200 and health().status_code == 200

        # A writer stuck behind a lock: the request times out (503), /health turns 503 meanwhile.
        release = threading.Event()

        def hold_lock() -> None:
            with psycopg.connect(url) as locker:
                locker.execute("lock table raw.events in access exclusive mode")
                release.wait(30)

        holder = threading.Thread(target=hold_lock)
        holder.start()
        try:
            time.sleep(0.5)
            assert post().status_code == 503
            stuck = health()
            assert stuck.status_code == 503 and "writer_stuck" in stuck.json()["problems"]
        finally:
            release.set()
            holder.join()
        deadline = time.monotonic() + 30
        while health().status_code != 200:
            assert time.monotonic() < deadline, health().text
            time.sleep(0.2)
        assert post().status_code == 200
