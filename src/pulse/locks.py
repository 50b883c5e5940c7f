"""The warehouse lock: a build rewrites the marts alone; readers share them; nobody sees a half-built mart.

A dbt build may empty the incremental models and rebuild them (after a deletion from `raw.events`), so
between its first and last model the marts are partly empty. Every step that rewrites the marts holds
the lock exclusively (`pulse build`, `pulse forget`); every step that reads them holds it shared
(features, training, scoring, audiences), CLI verbs and Airflow tasks alike, since both call these
functions. The lock is a PostgreSQL advisory lock on a connection of its own, so it spans processes and
machines (Airflow workers) and disappears with the process that held it.

Airflow's transform DAG runs dbt as one task per model, in several processes: no one process can hold
the lock from the first model to the last. It takes a *lease* instead (`take_lease` in a setup task,
`release_lease` in a teardown task): a row in `audit.build_leases` that readers and other builds wait
for exactly as they wait for the advisory lock. A lease has an expiry, so a scheduler that died midway
blocks nobody forever.

Waiting is bounded (`PULSE_LOCK_TIMEOUT`, seconds); a reader that times out fails with a message that
names who holds the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache
from typing import Literal

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import _engine_for, engine, warehouse_url

log = logging.getLogger(__name__)

# One advisory key for "the marts" (any 64-bit number no other tool on the server uses).
MARTS_LOCK_KEY = 0x70756C73_6D617274  # "pulsmart"
# Held in the transaction that writes to or deletes from raw.events: shared by every loader (collector,
# files), exclusive by `pulse forget`, so a forget never interleaves with a load of the same person.
RAW_EVENTS_LOCK_KEY = 0x70756C73_72617745  # "pulsrawE"
POLL_SECONDS = 0.5
LEASE_TTL = timedelta(hours=6)

Mode = Literal["exclusive", "shared"]

LEASES_DDL = """
create schema if not exists audit;
create table if not exists audit.build_leases (
    holder      text primary key,       -- e.g. pulse_transform/<run id>
    purpose     text not null,
    taken_at    timestamptz not null default now(),
    expires_at  timestamptz not null
)
"""


class LockTimeout(RuntimeError):
    """The marts stayed locked by someone else for longer than the caller was willing to wait."""


_held = threading.local()  # the mode this thread holds, so nested steps (demo → build) do not self-wait


def _holders(conn) -> str:
    """Who holds the marts now: sessions (by application_name) and unexpired leases."""
    sessions = conn.execute(
        sa.text(
            "select coalesce(nullif(a.application_name, ''), 'pid ' || a.pid) || ' (' || l.mode || ', since '"
            " || to_char(a.backend_start at time zone 'UTC', 'HH24:MI:SS') || ' UTC)' from pg_locks l "
            "join pg_stat_activity a using (pid) where l.locktype = 'advisory' and l.granted "
            "and ((l.classid::bigint << 32) | l.objid::bigint) = :k and a.pid <> pg_backend_pid()"
        ),
        {"k": MARTS_LOCK_KEY},
    ).scalars()
    leases = conn.execute(
        sa.text(
            "select holder || ' (' || purpose || ', lease until ' "
            "|| to_char(expires_at at time zone 'UTC', 'HH24:MI:SS') || ' UTC)' "
            "from audit.build_leases where expires_at > now()"
        )
    ).scalars()
    return "; ".join([*sessions, *leases]) or "nobody (it was just released)"


def _leased_by_other(conn, me: str | None) -> bool:
    return conn.execute(
        sa.text(
            "select exists (select 1 from audit.build_leases where expires_at > now() and holder <> :me)"
        ),
        {"me": me or ""},
    ).scalar_one()


def _ensure_leases(settings: Settings) -> None:
    _ensure_leases_at(warehouse_url(settings))


@lru_cache(maxsize=8)
def _ensure_leases_at(url: str) -> None:  # once per process and warehouse
    with _engine_for(url).begin() as conn:
        conn.exec_driver_sql(LEASES_DDL)


@contextmanager
def marts_lock(
    mode: Mode,
    purpose: str,
    settings: Settings | None = None,
    timeout: float | None = None,
    lease_holder: str | None = None,
) -> Iterator[None]:
    """Hold the marts lock (`exclusive` to rewrite them, `shared` to read them) for the block.

    Waits up to `timeout` seconds (default `PULSE_LOCK_TIMEOUT`) while another build, or a lease other
    than `lease_holder`'s, holds it; logs once that it waits and for whom; raises LockTimeout after.
    Re-entrant within a thread (a step that holds it exclusively may call readers).
    """
    current = getattr(_held, "mode", None)
    if current == "exclusive" or current == mode:
        yield
        return
    if current == "shared":
        raise RuntimeError(f"{purpose}: cannot take the marts lock exclusively while reading the marts")
    settings = settings or get_settings()
    timeout = settings.lock_timeout if timeout is None else timeout
    _ensure_leases(settings)
    suffix = "_shared" if mode == "shared" else ""
    deadline = time.monotonic() + timeout
    waiting_said = False
    with engine(settings).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            sa.text("select set_config('application_name', :n, false)"), {"n": f"pulse: {purpose}"[:63]}
        )
        try:
            while True:
                got = conn.execute(
                    sa.text(f"select pg_try_advisory_lock{suffix}(:k)"), {"k": MARTS_LOCK_KEY}
                ).scalar_one()
                if got and not _leased_by_other(conn, lease_holder):
                    break
                if got:
                    conn.execute(sa.text(f"select pg_advisory_unlock{suffix}(:k)"), {"k": MARTS_LOCK_KEY})
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"{purpose}: gave up after waiting {timeout:.0f}s for the marts, which are being "
                        f"rewritten by: {_holders(conn)}. Retry when that has finished "
                        "(or raise PULSE_LOCK_TIMEOUT)."
                    )
                if not waiting_said:
                    log.warning("%s: waiting for the marts, held by: %s", purpose, _holders(conn))
                    waiting_said = True
                time.sleep(POLL_SECONDS)
            if waiting_said:
                log.warning("%s: the marts are free again; going on", purpose)
            _held.mode = mode
            try:
                yield
            finally:
                _held.mode = None
                conn.execute(sa.text(f"select pg_advisory_unlock{suffix}(:k)"), {"k": MARTS_LOCK_KEY})
        finally:
            conn.execute(sa.text("select set_config('application_name', '', false)"))


def take_lease(
    holder: str, purpose: str, settings: Settings | None = None, ttl: timedelta = LEASE_TTL
) -> None:
    """Hold the marts exclusively beyond this process, until `release_lease(holder)` or the expiry.

    Waits, as an exclusive `marts_lock` does, for current readers and builds to finish. Taking it again
    with the same holder (a retried setup task) renews it.
    """
    settings = settings or get_settings()
    with marts_lock("exclusive", purpose, settings, lease_holder=holder), engine(settings).begin() as conn:
        conn.execute(
            sa.text(
                "insert into audit.build_leases (holder, purpose, expires_at) values (:h, :p, now() + :ttl) "
                "on conflict (holder) do update set expires_at = excluded.expires_at"
            ),
            {"h": holder, "p": purpose, "ttl": ttl},
        )


def release_lease(holder: str, settings: Settings | None = None) -> bool:
    """Give the lease back (True if it was held); readers waiting for it go on."""
    settings = settings or get_settings()
    _ensure_leases(settings)
    with engine(settings).begin() as conn:
        return bool(
            conn.execute(sa.text("delete from audit.build_leases where holder = :h"), {"h": holder}).rowcount
        )


def hold_raw_events_exclusively(conn) -> None:
    """In `conn`'s transaction: wait for every load into raw.events in flight, and keep new ones out
    until the transaction ends (`pulse forget` deletes a person and adds them to the suppression list)."""
    conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": RAW_EVENTS_LOCK_KEY})
