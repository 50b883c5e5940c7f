"""`pulse up` with PULSE_DATABASE_URL unset starts an embedded PostgreSQL, reuses it, and `pulse down` stops it."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg

PULSE = str(Path(sys.executable).parent / "pulse")


def run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([PULSE, *args], env=env, capture_output=True, text=True, timeout=120)


def test_pulse_up_starts_reuses_and_stops_an_embedded_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env["PULSE_HOME"] = str(tmp_path / "home")
    try:
        first = run("up", env=env)
        assert first.returncode == 0, first.stderr
        url = first.stdout.strip().splitlines()[-1]
        assert url.startswith("postgresql://") and str(tmp_path) in url
        with psycopg.connect(url) as conn:
            schemas = {r[0] for r in conn.execute("select schema_name from information_schema.schemata")}
            pid = conn.execute("select pg_backend_pid()").fetchone()
        assert {"raw", "ml", "audiences"} <= schemas and pid

        second = run("up", env=env)
        assert second.returncode == 0 and second.stdout.strip().splitlines()[-1] == url
    finally:
        stopped = run("down", env=env)
    assert "stopped" in stopped.stderr
    assert not (tmp_path / "home" / "pgdata" / "postmaster.pid").exists()
