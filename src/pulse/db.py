"""The warehouse: where it is, how to connect, and the tables Pulse owns outside dbt."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from pulse import embedded
from pulse.config import Settings, get_settings

SCHEMAS = ("raw", "ml", "audiences", "activation")


def warehouse_url(settings: Settings | None = None) -> str:
    """`PULSE_DATABASE_URL`, or the embedded server's URL (started on first use)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return embedded.start(settings.home_dir)


@dataclass(frozen=True)
class ConnParts:
    """A warehouse URL split into the fields dbt's and Feast's Postgres configs want."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> ConnParts:
        u = make_url(url)
        # A Unix-socket URL (postgresql://user:@/db?host=/dir) carries the socket dir as ?host=.
        host = u.host or u.query.get("host") or "localhost"
        if isinstance(host, tuple):
            host = host[0]
        return cls(
            host=host,
            port=u.port or 5432,
            user=u.username or "postgres",
            password=u.password or "",
            dbname=u.database or "postgres",
        )

    def env(self) -> dict[str, str]:
        """Environment variables read by `dbt_project/profiles.yml` and `feature_repo/feature_store.yaml`."""
        return {
            "PULSE_PG_HOST": self.host,
            "PULSE_PG_PORT": str(self.port),
            "PULSE_PG_USER": self.user,
            "PULSE_PG_PASSWORD": self.password,
            "PULSE_PG_DBNAME": self.dbname,
        }


def sqlalchemy_url(url: str, driver: str = "psycopg2") -> str:
    return make_url(url).set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True, future=True)


def engine(settings: Settings | None = None) -> Engine:
    """A pooled engine for the warehouse (one per URL per process)."""
    return _engine_for(warehouse_url(settings))


def create_schemas(settings: Settings | None = None) -> None:
    """Create Pulse's schemas and tables; safe to run any number of times."""
    folder = resources.files("pulse").joinpath("sql")
    # schema.sql first (schemas and raw tables), then the rest by name.
    names = [
        "schema.sql",
        *sorted(n.name for n in folder.iterdir() if n.name.endswith(".sql") and n.name != "schema.sql"),
    ]
    with engine(settings).begin() as conn:
        for name in names:
            conn.exec_driver_sql(folder.joinpath(name).read_text())
