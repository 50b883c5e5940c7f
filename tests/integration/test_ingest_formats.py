"""CSV, Segment batch and gzipped files through `pulse ingest`, and `pulse import-orders`, on real PostgreSQL."""

import gzip
import json

import psycopg
from typer.testing import CliRunner

from pulse.cli import app
from pulse.events.ingest import ingest_path
from pulse.events.orders import OrderColumns, import_orders


def fetch(url: str, sql: str):
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_csv_batch_and_gzip_files_load_through_the_same_contract(settings, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.csv").write_text(
        "type,event,messageId,userId,timestamp,properties.price,traits.email\n"
        "track,Product Viewed,c-1,u1,2026-01-01T10:00:00+01:00,9.5,\n"
        "identify,,c-2,u1,2026-01-01T10:00:00Z,,Jane@Example.com\n"
        "track,,c-3,u1,2026-01-01T10:00:00Z,,\n"  # no event name: rejected
    )
    batch = {
        "batch": [
            {"type": "track", "event": "Order Completed", "messageId": "b-1", "userId": "u2"},
            {"type": "page", "messageId": "b-2", "anonymousId": "a-1", "name": "Home"},
            "not an event",
        ],
        "sentAt": "2026-01-01T10:00:00Z",
        "context": {"library": {"name": "exporter"}},
    }
    (folder / "b.json").write_text(json.dumps(batch))
    lines = [
        json.dumps({"type": "track", "event": "Signed In", "messageId": f"g-{i}", "userId": "u3"})
        for i in range(3)
    ]
    (folder / "c.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))

    result = ingest_path(folder, settings)
    assert (result.files, result.lines, result.inserted, result.rejected) == (3, 9, 7, 2)
    rows = dict(fetch(settings.database_url, "select event_id, event_name from raw.events"))
    assert rows == {
        "c-1": "product_viewed",
        "c-2": "identify",
        "b-1": "order_completed",
        "b-2": "page",
        "g-0": "signed_in",
        "g-1": "signed_in",
        "g-2": "signed_in",
    }
    (context,) = fetch(settings.database_url, "select context from raw.events where event_id = 'b-1'")
    assert context[0] == {"library": {"name": "exporter"}}
    everything = " ".join(r[0] for r in fetch(settings.database_url, "select t::text from raw.events t"))
    assert "jane" not in everything.lower()
    rejects = fetch(
        settings.database_url, "select source, line_number, reason from raw.events_rejected order by 1"
    )
    assert [(s.rsplit("/", 1)[-1], n) for s, n, _ in rejects] == [("a.csv", 4), ("b.json", 3)]
    assert ingest_path(folder, settings).inserted == 0  # replay adds nothing


def test_import_orders_is_idempotent_and_maps_columns(settings, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "client;date;total;items;ref\n"
        "c1;03/02/2026 10:00;12.50;2;o-1\n"
        "c1;03/02/2026 10:00;12.50;2;\n"
        "c1;03/02/2026 10:00;12.50;2;\n"  # same as the row above: a second order
        "c2;yesterday;5;1;o-3\n"
        "c3;04/02/2026 09:30;€7,00;1;o-4\n"  # a decimal comma
    )
    columns = OrderColumns(
        customer_id="client", order_timestamp="date", amount="total", quantity="items", order_id="ref"
    )
    first = import_orders(path, settings, columns=columns, date_format="%d/%m/%Y %H:%M", delimiter=";")
    assert (first.lines, first.inserted, first.rejected) == (5, 4, 1)
    again = import_orders(path, settings, columns=columns, date_format="%d/%m/%Y %H:%M", delimiter=";")
    assert again.inserted == 0 and again.duplicates == first.inserted
    orders = fetch(
        settings.database_url,
        "select user_id, event_name, properties ->> 'revenue', event_at from raw.events order by event_id",
    )
    assert {o[1] for o in orders} == {"order_completed"}
    assert sorted((o[0], float(o[2])) for o in orders) == [("c1", 12.5)] * 3 + [("c3", 7.0)]
    reasons = [r[0] for r in fetch(settings.database_url, "select reason from raw.events_rejected")]
    assert any("yesterday" in r for r in reasons)

    # The CLI verb with default column names.
    plain = tmp_path / "plain.csv"
    plain.write_text("customer_id,order_timestamp,amount\nc9,2026-02-01T08:00:00Z,3\n")
    out = CliRunner().invoke(app, ["import-orders", str(plain)])
    assert out.exit_code == 0, out.output
    assert fetch(settings.database_url, "select count(*) from raw.events where user_id = 'c9'")[0][0] == 1
