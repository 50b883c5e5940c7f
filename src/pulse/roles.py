"""Least-privilege roles in the warehouse (`pulse up --roles`): one role per job (sql/roles/roles.sql)
and the login users the compose stack's services connect as, each a member of the roles its job needs.

A login is made only when its password is in the environment (docker-compose gives them to
`airflow-init`); its password is set again on every run, which is how it is rotated."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from pulse.config import Settings
from pulse.db import warehouse_url

JOB_ROLES = ("pulse_collector", "pulse_transform", "pulse_scoring", "pulse_triggers", "pulse_audience")


@dataclass(frozen=True)
class Login:
    name: str
    password_variable: str
    roles: tuple[str, ...]
    # Sessions start as this role (ALTER ROLE ... SET role), so what they create is owned by the job role,
    # not the login: default privileges apply, and a new login (a rotation) owns nothing to hand over.
    acts_as: str | None = None


# `pulse serve` collects events and answers the scoring API; `pulse triggers run` evaluates and fires
# triggers; Airflow runs the pipeline.
LOGINS = (
    Login("pulse_svc_collector", "COLLECTOR_DB_PASSWORD", ("pulse_collector", "pulse_scoring")),
    Login("pulse_svc_triggers", "TRIGGERS_DB_PASSWORD", ("pulse_triggers",)),
    Login("pulse_svc_pipeline", "PIPELINE_DB_PASSWORD", ("pulse_transform",), acts_as="pulse_transform"),
    Login("pulse_svc_feature_server", "FEATURE_SERVER_DB_PASSWORD", ("pulse_scoring",)),
)


def create_roles(
    settings: Settings, environ: Mapping[str, str] | None = None, logins: Sequence[Login] = LOGINS
) -> list[str]:
    """Create (or bring up to date) the job roles and their grants, and every login whose password is
    set; returns the logins made. Needs the warehouse owner (or a superuser); the schemas must exist."""
    environ = os.environ if environ is None else environ
    made = []
    with psycopg.connect(warehouse_url(settings)) as conn:
        conn.execute(resources.files("pulse").joinpath("sql/roles/roles.sql").read_text())
        for login in logins:
            password = environ.get(login.password_variable)
            if not password:
                continue
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (login.name,)).fetchone()
            conn.execute(
                sql.SQL("{} role {} login password {}").format(
                    sql.SQL("alter" if exists else "create"),
                    sql.Identifier(login.name),
                    sql.Literal(password),
                )
            )
            for role in login.roles:
                conn.execute(
                    sql.SQL("grant {} to {}").format(sql.Identifier(role), sql.Identifier(login.name))
                )
            if login.acts_as:
                conn.execute(
                    sql.SQL("alter role {} set role {}").format(
                        sql.Identifier(login.name), sql.Identifier(login.acts_as)
                    )
                )
            made.append(login.name)
    return made
