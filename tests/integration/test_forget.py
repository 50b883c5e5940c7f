"""`pulse forget` against a real warehouse and both online stores: after it, no table, online entry, export
or landed file holds the customer; everyone else's data is untouched; the audit row says so; and the
final check fails when something of theirs is left."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from pulse import forget as erasure
from pulse.cli import app
from pulse.events.ingest import ingest_file
from pulse.events.pii import sha256
from pulse.events.simulator import simulate
from pulse.features import store as feast_store
from tests.conftest import TEST_REDIS_URL, tables_naming

SIM_END = datetime(2026, 4, 1, tzinfo=UTC)
SNAPSHOT = SIM_END - timedelta(days=1)
EXPORT_HEADER = ["customer_id", "email_sha256", "rank", "recommended_category"]


def _scalar(url: str, sql: str, *params):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def _land_events(settings, tmp_path, target: str):
    """Simulated events plus an alias of the target's old account and a reject naming them, landed
    and loaded; returns the landed file and the simulation's own."""
    sim = simulate(tmp_path / "sim", customers=12, days=6, seed=11, end=SIM_END)
    landed = settings.landing_dir / "events.jsonl"
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sim.events_path, landed)
    at = (SIM_END - timedelta(days=2)).isoformat()
    extra = [
        {
            "type": "alias",
            "previousId": f"legacy-{target}",
            "userId": target,
            "messageId": "alias-1",
            "timestamp": at,
        },
        {
            "type": "track",
            "event": "Page Viewed",
            "userId": f"legacy-{target}",
            "messageId": "legacy-1",
            "timestamp": at,
        },
    ]
    with landed.open("a") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in extra)
        handle.write(f'{{"type": "track", "userId": "{target}", "timestamp": "not a time"}}\n')  # a reject
    ingest_file(landed, settings)
    return landed, sim.events_path


def _snapshots_online(settings, customers: list[str]) -> None:
    """One feature snapshot per customer in the Feast offline source, materialised online."""
    (view,) = [o for o in feast_store.repo_objects(settings) if o.name == "customer_activity"]
    frame = pd.DataFrame(
        [
            {"customer_id": c, "event_timestamp": SNAPSHOT, **{f.name: 1 for f in view.features}}
            for c in customers
        ]
    )
    columns = ", ".join(f"{f.name} double precision" for f in view.features)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("create schema if not exists marts")
        conn.execute(
            f"create table marts.customer_features (customer_id text, event_timestamp timestamptz, {columns})"
        )
        with conn.cursor().copy(
            f"copy marts.customer_features ({', '.join(frame.columns)}) from stdin"
        ) as copy:
            for row in frame.itertuples(index=False):
                copy.write_row(row)
        conn.execute(
            "insert into ml.segments select customer_id, %s, 'champions', 0, 'loyal' from marts.customer_features",
            (SNAPSHOT,),
        )
    feast_store.materialize_window(SNAPSHOT, SIM_END, settings)


def _export(settings, rows: list[list[str]]):
    path = settings.home_dir / "exports" / "likely_buyers.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([EXPORT_HEADER, *rows])
    return path


def _online(settings, customers: list[str]) -> list:
    return (
        feast_store.feature_store(settings)
        .get_online_features(
            features=["customer_activity:orders_7d"], entity_rows=[{"customer_id": c} for c in customers]
        )
        .to_dict()["orders_7d"]
    )


@pytest.mark.parametrize("online", ["postgres", "redis"])
def test_forget_by_email_removes_the_customer_everywhere_and_nobody_else(
    settings, monkeypatch, tmp_path, online
):
    if online == "redis":
        monkeypatch.setattr(settings, "redis_url", TEST_REDIS_URL)
        monkeypatch.setenv("PULSE_REDIS_URL", TEST_REDIS_URL)  # for the CLI
    target, other = "c000004", "c000006"  # both identified with an email in the simulation
    url = settings.database_url
    landed, simulated = _land_events(settings, tmp_path, target)
    target_anonymous = _scalar(
        url,
        "select array_agg(distinct anonymous_id) from raw.events where user_id = %s and anonymous_id is not null",
        target,
    )
    events = [json.loads(line) for line in simulated.open()]
    theirs = [
        e
        for e in events
        if e.get("userId") == target or (not e.get("userId") and e["anonymousId"] in target_anonymous)
    ]
    assert len(theirs) > len([e for e in events if e.get("userId") == target])  # browsing before sign-in
    others_events = len(events) - len(theirs)
    _snapshots_online(settings, [target, other])
    export = _export(
        settings, [[target, sha256(f"{target}@example.com"), "1", "shoes"], [other, "h", "2", "toys"]]
    )
    assert tables_naming(url, target) and _online(settings, [target, other]) == [1, 1]
    assert _scalar(url, "select count(*) from raw.events_rejected") == 1

    result = erasure.forget(email=f"  {target.upper()}@Example.com ", settings=settings)
    try:
        # Their address as a user id (how an email used as one is stored) is theirs too.
        hashed_id = f"sha256:{sha256(f'{target}@example.com')}"
        assert result.identities.customer_ids == sorted([target, f"legacy-{target}", hashed_id])
        assert set(target_anonymous) <= set(result.identities.anonymous_ids)
        assert result.deleted_rows["raw.events_rejected"] == 1
        assert result.online_keys >= 1
        # Nothing of theirs anywhere (by a scan of every table as text), online or in files...
        for value in [target, f"legacy-{target}", *target_anonymous]:
            assert tables_naming(url, value) == {}, value
        assert _online(settings, [target, other]) == [None, 1]
        with export.open() as handle:
            assert list(csv.reader(handle)) == [EXPORT_HEADER, [other, "h", "2", "toys"]]
        assert target not in landed.read_text()
        # ...and everyone else's events, snapshot and segment are all still there.
        assert _scalar(url, "select count(*) from raw.events") == others_events
        assert len(landed.read_text().splitlines()) == others_events
        assert _scalar(url, "select count(*) from marts.customer_features where customer_id = %s", other) == 1
        assert _scalar(url, "select count(*) from ml.segments") == 1
        # The audit row: verified, with counts and a hash of the subject, never the address itself.
        with psycopg.connect(url) as conn:
            status, subject, deleted, audit_text = conn.execute(
                "select status, subject_sha256, deleted_rows, a::text from audit.forget_requests a"
            ).fetchone()
        assert (status, subject) == ("verified", sha256(f"{target}@example.com"))
        assert deleted["raw.events"] > 0 and deleted["marts.customer_features"] == 1
        assert target not in audit_text and "example.com" not in audit_text

        # Asking again (by customer id, from the CLI) finds nothing more to delete and still verifies.
        outcome = CliRunner().invoke(app, ["forget", target])
        assert outcome.exit_code == 0, outcome.output
        assert "verified" in outcome.output
        assert _scalar(url, "select count(*) from audit.forget_requests where status = 'verified'") == 2
    finally:
        if online == "redis":
            feast_store.feature_store(settings).teardown()


def test_the_check_fails_when_something_of_theirs_is_left(settings, tmp_path):
    target = "c000005"
    _land_events(settings, tmp_path, target)
    identities = erasure.resolve(customer_id=target, settings=settings)
    erasure.forget_warehouse(identities, settings)
    erasure.forget_files(identities, settings)
    erasure.record_audit("r-1", identities, {}, 0, {}, settings)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:  # a copy made behind Pulse's back
        conn.execute("insert into ml.segments values (%s, now(), 'lost', 1, 'x')", (target,))
        conn.execute("create schema marts")
        conn.execute("create table marts.notes (note jsonb)")
        conn.execute("insert into marts.notes values (%s)", (json.dumps({"about": [{"who": target}]}),))

    listed = r"present in: marts\.notes\.note \(1\), ml\.segments\.customer_id \(1\)$"
    with pytest.raises(erasure.ForgetError, match=listed):
        erasure.verify("r-1", identities, settings)
    found = _scalar(
        settings.database_url, "select remaining from audit.forget_requests where request_id = 'r-1'"
    )
    assert found == {"ml.segments.customer_id": 1, "marts.notes.note": 1}
    assert _scalar(settings.database_url, "select status from audit.forget_requests") == "failed"


def test_a_request_must_name_exactly_one_subject(settings):
    with pytest.raises(erasure.ForgetError, match="exactly one"):
        erasure.resolve(settings=settings)
    with pytest.raises(erasure.ForgetError, match="exactly one"):
        erasure.resolve("c1", "c1@example.com", settings)
