"""An email that more than one customer used (issue 13, item 9): `pulse forget --email` reports the
customers it matches and deletes nothing; with `--yes` it forgets all of them."""

from __future__ import annotations

import json

import psycopg
from typer.testing import CliRunner

from pulse.cli import app
from pulse.events.ingest import ingest_file
from tests.conftest import tables_naming

EMAIL = "family@example.com"


def test_an_email_of_several_customers_needs_confirmation(settings, tmp_path):
    events = tmp_path / "events.jsonl"
    lines = [
        {
            "type": "identify",
            "messageId": f"i-{c}",
            "timestamp": "2026-05-01T10:00:00Z",
            "userId": c,
            "traits": {"email": EMAIL},
        }
        for c in ("c-parent", "c-child")
    ]
    lines.append(
        {
            "type": "identify",
            "messageId": "i-x",
            "timestamp": "2026-05-01T10:00:00Z",
            "userId": "c-x",
            "traits": {"email": "x@example.com"},
        }
    )
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    ingest_file(events, settings)

    refused = CliRunner().invoke(app, ["forget", "--email", EMAIL])
    assert refused.exit_code != 0
    assert "belongs to 2 customers" in refused.output and "--yes" in refused.output
    assert "c-parent" in refused.output and "c-child" in refused.output  # reported to the operator
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("select count(*) from raw.events").fetchone()[0] == 3  # nothing deleted

    confirmed = CliRunner().invoke(app, ["forget", "--email", EMAIL, "--yes"])
    assert confirmed.exit_code == 0, confirmed.output
    assert tables_naming(settings.database_url, "c-parent") == {}
    assert tables_naming(settings.database_url, "c-child") == {}
    assert tables_naming(settings.database_url, "c-x")  # someone else: kept
