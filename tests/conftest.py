"""Shared fixtures: every test that touches the warehouse gets its own database on a real PostgreSQL.

The server is PULSE_DATABASE_URL's when set, otherwise Pulse's embedded PostgreSQL (the same default users
get), so `make test` needs nothing prepared. Each test creates `pulse_test_<random>` and drops it after,
so tests run in parallel (pytest-xdist) and leave nothing behind.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from pulse import db, embedded
from pulse.config import PROJECT_ROOT, Settings

# Quiet, offline tools; a private AIRFLOW_HOME per test process (Airflow reads it at import time).
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")
os.environ.setdefault("AIRFLOW__COSMOS__ENABLE_TELEMETRY", "False")
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="pulse-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT_ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

TEST_REDIS_URL = os.environ.get("PULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def server_url() -> str:
    """A PostgreSQL server URL (any database on it) the tests may create databases on."""
    configured = os.environ.get("PULSE_DATABASE_URL")
    if configured:
        return configured
    # Shared by all test workers; started once, reused after (as `pulse up` does).
    return embedded.start(PROJECT_ROOT / ".pulse" / "test-server")


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(
        make_url(url).set(database="postgres").render_as_string(hide_password=False), autocommit=True
    )


@pytest.fixture
def database_url(server_url: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = f"pulse_test_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        conn.execute(f'create database "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        engine = db._engine_for(url)
        engine.dispose()
        with _admin(server_url) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Pulse settings for one test: its own database, home and Feast project; also exported to the
    environment so code that reads settings itself (CLI, Airflow tasks) sees the same."""
    project = f"pulse_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("PULSE_DATABASE_URL", database_url)
    monkeypatch.setenv("PULSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PULSE_FEAST_PROJECT", project)
    monkeypatch.delenv("PULSE_REDIS_URL", raising=False)
    current = Settings()
    db.create_schemas(current)
    yield current
    _drop_online_keys(project)


def _drop_online_keys(project: str) -> None:
    """Remove the test's keys from the shared Redis test database: Feast's keys end with the project name,
    which is the test's own, so other tests' keys stay."""
    import redis

    try:
        client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
        keys = [k for k in client.scan_iter(match=f"*{project}", count=1000) if k.endswith(project.encode())]
        if keys:
            client.delete(*keys)
    except redis.RedisError:  # no Redis here: no test could have written to it
        pass


def tables_naming(url: str, value: str) -> dict[str, int]:
    """Every table of the database (any schema but the catalog and the erasure audit trail) whose rows,
    read as text, contain `value` as a whole token: table -> rows. What a privacy check would run."""
    token = rf"(^|[^A-Za-z0-9_-]){re.escape(value)}($|[^A-Za-z0-9_-])"
    found = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' "
            "and table_schema not in ('pg_catalog', 'information_schema', 'audit')"
        ).fetchall()
        for schema, name in tables:
            count = conn.execute(
                f'select count(*) from "{schema}"."{name}" t where t::text ~ %s', (token,)
            ).fetchone()[0]
            if count:
                found[f"{schema}.{name}"] = count
    return found


# Columns that record how an incremental build wrote a row rather than what it says: which build wrote it
# and from which point it replaced a visitor's sessions. Two builds of the same data in other batches
# differ there and nowhere else.
BOOKKEEPING_COLUMNS = frozenset({"_updated_at", "_replace_from", "replaced_customer_id"})


def table_checksums(
    url: str, tables: Iterable[str], exclude: Callable[[str], set[str] | frozenset[str]] = lambda table: set()
) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of each of `tables`, leaving out `exclude(table)`."""
    result = {}
    with psycopg.connect(url) as conn:
        for table in tables:
            schema, name = table.split(".")
            row = ", ".join(f't."{c}"' for c in table_columns(conn, table, exclude(table)))
            result[table] = conn.execute(
                f"select count(*), coalesce(md5(string_agg(h, '' order by h)), '') "
                f'from (select md5(row({row})::text) as h from "{schema}"."{name}" t) rows'
            ).fetchone()
    return result


def table_columns(
    conn: psycopg.Connection, table: str, exclude: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """The columns of `schema.table` in order, without `exclude` (columns that record how or when a row
    was written rather than what it says)."""
    schema, name = table.split(".")
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
        "order by ordinal_position",
        (schema, name),
    )
    return [r[0] for r in rows if r[0] not in exclude]
