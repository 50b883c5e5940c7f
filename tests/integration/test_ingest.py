"""Ingestion against a real PostgreSQL: idempotent, rejects kept with reasons, one transaction per file."""

import json
import sys

import psycopg
import pytest

from pulse.events import lines as lines_module
from pulse.events import parse_worker
from pulse.events.ingest import ingest_path


def good(i: int, **overrides) -> str:
    event = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"msg-{i}",
        "userId": f"c{i % 7}",
        "timestamp": "2026-02-01T12:00:00Z",
        "properties": {"product_id": f"p{i}", "price": 9.99},
    }
    event.update(overrides)
    return json.dumps(event)


BAD_LINES = [
    "{not json",
    json.dumps([1, 2, 3]),
    json.dumps({"type": "track", "messageId": "no-user", "event": "X"}),
    json.dumps({"type": "track", "messageId": "no-name", "userId": "c1"}),
    json.dumps({"type": "bogus", "messageId": "bad-type", "userId": "c1"}),
    json.dumps({"type": "track", "event": "X", "messageId": "bad-ts", "userId": "c1", "timestamp": "soon"}),
    json.dumps({"type": "track", "event": "X", "messageId": "nul", "userId": "c1\u0000"}),
    "'); drop table raw.events; --",
]


def counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        events = conn.execute("select count(*) from raw.events").fetchone()[0]
        rejected = conn.execute("select count(*) from raw.events_rejected").fetchone()[0]
    return events, rejected


def test_ingest_is_idempotent_on_message_id(settings, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(good(i) for i in range(500)) + "\n")
    first = ingest_path(path, settings)
    assert (first.inserted, first.duplicates, first.rejected) == (500, 0, 0)
    again = ingest_path(path, settings)
    assert (again.inserted, again.duplicates) == (0, 500)
    assert counts(settings.database_url) == (500, 0)
    # The same events in another file are still the same events.
    copy = tmp_path / "copy.jsonl"
    copy.write_text(path.read_text())
    assert ingest_path(copy, settings).inserted == 0


def test_bad_lines_are_rejected_with_reasons_and_good_ones_load(settings, tmp_path):
    lines = [good(i) for i in range(20)]
    for n, bad in enumerate(BAD_LINES):
        lines.insert(2 * n + 1, bad)
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = ingest_path(path, settings)
    assert (result.inserted, result.rejected, result.lines) == (20, len(BAD_LINES), 20 + len(BAD_LINES))
    assert counts(settings.database_url) == (20, len(BAD_LINES))
    with psycopg.connect(settings.database_url) as conn:
        rows = dict(conn.execute("select payload, reason from raw.events_rejected").fetchall())
    assert set(rows) == set(BAD_LINES)  # every bad line kept verbatim
    assert rows["{not json"].startswith("invalid JSON")
    assert "userId or anonymousId" in rows[BAD_LINES[2]]
    assert "NUL" in rows[BAD_LINES[6]]
    # Replaying the file adds no duplicate rejects either.
    ingest_path(path, settings)
    assert counts(settings.database_url) == (20, len(BAD_LINES))


def test_a_crash_mid_load_leaves_no_half_batch(settings, tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(good(i) for i in range(1000)) + "\n" + BAD_LINES[0] + "\n")
    real_parse = lines_module.copy_line

    def crash_at_line_700(line, source, number, received_at):
        if number == 700:
            raise RuntimeError("simulated crash")
        return real_parse(line, source, number, received_at)

    monkeypatch.setattr(lines_module, "copy_line", crash_at_line_700)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ingest_path(path, settings)
    assert counts(settings.database_url) == (0, 0)

    monkeypatch.setattr(lines_module, "copy_line", real_parse)
    result = ingest_path(path, settings)
    assert (result.inserted, result.rejected) == (1000, 1)


def test_ingest_takes_directories_and_globs(settings, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.jsonl").write_text(good(1) + "\n")
    (folder / "b.jsonl").write_text(good(2) + "\n")
    (folder / "notes.txt").write_text("not events")
    assert ingest_path(folder, settings).inserted == 2
    assert ingest_path(str(folder / "*.jsonl"), settings).duplicates == 2
    with pytest.raises(FileNotFoundError):
        ingest_path(tmp_path / "nothing-here-*.jsonl", settings)


def rejects(url: str) -> set[tuple[str, int, str]]:
    with psycopg.connect(url) as conn:
        return set(conn.execute("select payload, line_number, reason from raw.events_rejected").fetchall())


def test_the_parser_process_loads_what_in_process_parsing_loads(settings, tmp_path):
    """Big files are parsed by a separate process (parallel=True forces it for a small one): same rows,
    same rejects with the same line numbers, same counts, still idempotent."""
    lines = [good(i, userId=f"user{i}@Example.com" if i % 50 == 0 else f"c{i}") for i in range(3000)]
    for n, bad in enumerate(BAD_LINES):
        lines.insert(300 * n + 7, bad)
    lines.insert(11, "")
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines))  # no newline at the end
    result = ingest_path(path, settings, parallel=True)
    assert (result.inserted, result.rejected, result.lines) == (3000, len(BAD_LINES), 3000 + len(BAD_LINES))
    with psycopg.connect(settings.database_url) as conn:
        parallel_rows = conn.execute(
            "select event_id, user_id, event_name, event_at, properties from raw.events order by 1"
        ).fetchall()
        parallel_rejects = rejects(settings.database_url)
        conn.execute("truncate raw.events, raw.events_rejected")
    assert not any("@" in str(row) for row in parallel_rows)  # PII hashed on this path too

    in_process = ingest_path(path, settings, parallel=False)
    assert (in_process.inserted, in_process.rejected, in_process.lines) == (
        result.inserted,
        result.rejected,
        result.lines,
    )
    with psycopg.connect(settings.database_url) as conn:
        assert (
            conn.execute(
                "select event_id, user_id, event_name, event_at, properties from raw.events order by 1"
            ).fetchall()
            == parallel_rows
        )
    assert rejects(settings.database_url) == parallel_rejects
    again = ingest_path(path, settings, parallel=True)
    assert (again.inserted, again.duplicates) == (0, 3000)


def test_a_failing_parser_process_leaves_nothing(settings, tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(good(i) for i in range(200)) + "\n")
    # A parser that sends half a frame and dies, as if killed mid-file.
    monkeypatch.setattr(
        parse_worker,
        "COMMAND",
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'C' + bytes(8)); sys.exit(9)"],
    )
    with pytest.raises(RuntimeError, match="parser process"):
        ingest_path(path, settings, parallel=True)
    assert counts(settings.database_url) == (0, 0)
