"""A scratch database for a benchmark: created on the configured server (`--url`, else
`PULSE_DATABASE_URL`, else the embedded PostgreSQL), dropped afterwards whatever happens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

from pulse import db
from pulse.config import Settings


@contextmanager
def scratch_database(server: str | None) -> Iterator[str]:
    server = server or db.warehouse_url(Settings(database_url=None))
    name = f"pulse_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(server).set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
