"""Least privilege on the real PostgreSQL: each role `pulse up --roles` creates can do its job and is
refused everything else; docker-compose needs real secrets and gives each service only its own."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest
import yaml
from psycopg import errors
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from pulse.cli import app
from pulse.config import Settings
from pulse.db import create_schemas
from pulse.events.ingest import parse_line
from pulse.events.load import Rejection, ensure_raw_tables, write_events, write_rejections
from pulse.roles import JOB_ROLES, LOGINS, create_roles
from pulse.transform import run_dbt
from pulse.triggers.engine import TriggerEngine, ensure_trigger_tables
from pulse.triggers.stream import EventStream
from tests.dags.test_compose import SECRETS, compose_config

NOW = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture
def logins(settings, database_url):
    """A throwaway login per job role (trust auth, as the test server has), dropped afterwards."""
    result = CliRunner().invoke(app, ["up", "--roles"])
    assert result.exit_code == 0, result.output
    create_roles(settings)  # idempotent: a second run changes nothing and does not fail
    prefix = f"pulse_test_{uuid.uuid4().hex[:8]}"
    urls = {}
    with psycopg.connect(database_url, autocommit=True) as admin:
        for role in JOB_ROLES:
            name = f"{prefix}_{role.removeprefix('pulse_')}"
            admin.execute(f'create role "{name}" login in role "{role}"')
            if role == "pulse_transform":  # as the pipeline's login is made: it works as the role
                admin.execute(f'alter role "{name}" set role pulse_transform')
            urls[role] = make_url(database_url).set(username=name).render_as_string(hide_password=False)
    yield urls
    with psycopg.connect(database_url, autocommit=True) as admin:
        # Not `drop owned by pulse_transform`: that also revokes its grants on every database of the server
        # (databases are shared objects). What it made here goes with the test's database.
        for url in urls.values():
            name = make_url(url).username
            admin.execute(f'drop owned by "{name}"')
            admin.execute(f'drop role "{name}"')


def _refused(url: str, statement: str) -> None:
    with psycopg.connect(url) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def _event(message_id: str) -> tuple:
    line = json.dumps(
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": message_id,
            "userId": "c1",
            "timestamp": NOW.isoformat(),
        }
    )
    row = parse_line(line, "collector", 1, NOW)
    assert not isinstance(row, Rejection)
    return row


def test_each_role_does_exactly_its_job(settings, logins, monkeypatch):
    collector, transform = logins["pulse_collector"], logins["pulse_transform"]
    scoring, audience, triggers = logins["pulse_scoring"], logins["pulse_audience"], logins["pulse_triggers"]

    # Collector: starts (its DDL check passes on tables the owner made), COPY, the ON CONFLICT fallback
    # that returns new ids, rejects. Reads and writes nothing else.
    ensure_raw_tables(collector)
    ensure_trigger_tables(triggers)
    with psycopg.connect(collector) as conn:
        assert write_events(conn, [_event("m1"), _event("m2")]).inserted == 2
        again = write_events(conn, [_event("m2"), _event("m3")], want_ids=True)
        assert again.inserted_ids == ["m3"]
        write_rejections(conn, [Rejection.of(b"{}", "invalid_json", "collector", None)])
    for statement in (
        "select * from raw.events",
        "select user_id from raw.events",
        "select payload from raw.events_rejected",
        "delete from raw.events",
        "update raw.events set user_id = 'x'",
        "select * from ml.model_runs",
        "insert into ml.scores values ('c', 'm', 'r', now(), 0.5, 50, now())",
        "select * from audiences.audience_definitions",
        "create table raw.mine (x int)",
    ):
        _refused(collector, statement)

    # Transform (the pipeline): dbt builds the models up to audience_inputs as this role.
    monkeypatch.setenv("PULSE_DATABASE_URL", transform)
    run_dbt(["run", "--select", "+audience_inputs"], Settings())
    create_schemas(Settings())  # the pipeline can upgrade Pulse's tables (forget does, before it runs)
    with psycopg.connect(transform) as conn:
        assert conn.execute("select count(*) from raw.events").fetchone()[0] == 3
        conn.execute("create table feast_online.pulse_customer_features (customer_id text)")
        conn.execute(
            "insert into ml.model_runs (run_id, training_id, model_name, algorithm, kind, feature_service, "
            "trained_at, data_end, holdout_at, horizon_days, n_train, n_holdout, features, selection_metric, "
            "status) values ('r1', 't', 'm', 'a', 'classification', 'fs', now(), now(), now(), 1, 1, 1, '[]', "
            "'auc', 'champion')"
        )
        conn.execute("insert into ml.scores values ('c1', 'm', 'r1', now(), 0.5, 50, now())")
    for statement in (
        "create role pulse_evil superuser",
        "alter role pulse_audience superuser",
        "grant pulse_scoring to pulse_collector",
        "select pg_read_file('/etc/passwd')",
        "copy raw.events to program 'id'",
        "select * from pg_authid",
        "create extension dblink",
    ):
        _refused(transform, statement)

    # Scoring: the registry, scores and the online store, read only.
    with psycopg.connect(scoring) as conn:
        assert conn.execute("select count(*) from ml.scores").fetchone()[0] == 1
        conn.execute("select run_id, artifact from ml.model_runs").fetchall()
        conn.execute("select * from feast_online.pulse_customer_features").fetchall()
    for statement in (
        "insert into ml.scores values ('c2', 'm', 'r1', now(), 0.5, 50, now())",
        "update ml.model_runs set artifact = 'x'",
        "select * from raw.events",
        "select * from marts.customers",
        "select * from audiences.audience_inputs",
    ):
        _refused(scoring, statement)

    # Triggers: customer facts and consent (granted by dbt on each build), scores, its own tables.
    with psycopg.connect(triggers) as conn:
        conn.execute("select customer_id from marts.customers").fetchall()
        conn.execute("select * from ml.scores").fetchall()
        conn.execute("select * from activation.trigger_timers").fetchall()
    # ... and the collector's events, the columns it evaluates: the worker reads them as this login.
    stream, evaluator = EventStream(triggers, "roles"), TriggerEngine(triggers, consumer="roles")
    try:

        def evaluate() -> int:
            return stream.read(None, lambda rows, at: evaluator.process(rows, position=at))

        assert evaluate() == 0  # the first read: the stream begins now
        with psycopg.connect(collector) as conn:
            write_events(conn, [_event("m4")])
        assert evaluate() == 1
    finally:
        stream.close()
        evaluator.close()
    for statement in (
        "select * from raw.events",
        "select traits, anonymous_id from raw.events",
        "insert into raw.events (event_id, event_type, event_name, event_at, received_at, source) "
        "values ('x', 'track', 'x', now(), now(), 'collector')",
        "select * from marts.orders",
        "delete from ml.scores",
    ):
        _refused(triggers, statement)

    # Audience: audience_inputs and nothing else (dbt re-grants the view on each build).
    with psycopg.connect(audience) as conn:
        assert conn.execute("select customer_id from audiences.audience_inputs").fetchall() == [("c1",)]
    for statement in (
        "select * from audiences.audience_definitions",
        "select * from raw.events",
        "select * from ml.scores",
        "select * from marts.customers",
        "insert into audiences.audience_definitions (audience_name) values ('x')",
    ):
        _refused(audience, statement)


def test_logins_are_made_from_passwords_in_the_environment(settings, database_url):
    # As the compose collector's login, under a name of its own (roles belong to the whole server).
    login = replace(LOGINS[0], name=f"pulse_test_{uuid.uuid4().hex[:8]}_svc")
    variable = login.password_variable
    try:
        assert create_roles(settings, {}, [login]) == []  # no password, no login
        assert create_roles(settings, {variable: "first-password"}, [login]) == [login.name]
        assert create_roles(settings, {variable: "rotated-password"}, [login]) == [login.name]
        with psycopg.connect(database_url) as conn:
            member_of = {
                r[0]
                for r in conn.execute(
                    "select b.rolname from pg_auth_members m join pg_roles a on a.oid = m.member "
                    "join pg_roles b on b.oid = m.roleid where a.rolname = %s",
                    (login.name,),
                )
            }
        assert member_of == set(login.roles)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'drop role if exists "{login.name}"')


def test_compose_needs_real_secrets_and_gives_each_service_only_its_own():
    for missing in SECRETS:
        done = compose_config(**{k: v for k, v in SECRETS.items() if k != missing})
        assert done.returncode != 0 and missing in done.stderr, (missing, done.stderr)
    services = yaml.safe_load(compose_config(**SECRETS).stdout)["services"]
    # Airflow's UI/API on loopback unless asked; the collector is the one service facing the network.
    assert services["airflow-apiserver"]["ports"][0].startswith("127.0.0.1:")
    for name, service in services.items():
        env = service.get("environment", {})
        url = env.get("PULSE_DATABASE_URL", "")
        if name not in (
            "airflow-init",
            "postgres",
        ):  # the one-off that creates roles: the only superuser client
            assert not url.startswith("postgresql://pulse:"), name
            assert SECRETS["POSTGRES_PASSWORD"] not in str(env), name
        if name in ("collector", "feature-server", "triggers"):
            assert not any(key.startswith("AIRFLOW") for key in env), name
            assert SECRETS["AIRFLOW_FERNET_KEY"] not in str(env) and SECRETS[
                "PIPELINE_DB_PASSWORD"
            ] not in str(env)
            assert not any("pulse-home" in volume for volume in service.get("volumes", [])), name
    assert services["collector"]["environment"]["PULSE_DATABASE_URL"].startswith(
        "postgresql://pulse_svc_collector:"
    )
    # Triggers run in their own service, as their own login, not in the collector's process.
    assert services["collector"]["environment"]["PULSE_TRIGGERS_ENABLED"] == "false"
    assert services["triggers"]["command"] == ["pulse", "triggers", "run"]
    assert services["triggers"]["environment"]["PULSE_DATABASE_URL"].startswith(
        "postgresql://pulse_svc_triggers:"
    )
    assert SECRETS["TRIGGERS_DB_PASSWORD"] not in str(services["collector"]["environment"])
    assert "PULSE_WRITE_KEY" not in services["triggers"]["environment"]
    assert "PULSE_WRITE_KEY" not in services["airflow-scheduler"]["environment"]
    assert "PULSE_READ_KEY" not in services["feature-server"]["environment"]
    assert {login.name for login in LOGINS} <= {
        make_url(s["environment"]["PULSE_DATABASE_URL"]).username
        for s in services.values()
        if "environment" in s and "PULSE_DATABASE_URL" in s["environment"]
    }
