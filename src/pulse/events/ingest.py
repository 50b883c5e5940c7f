"""Load event files into `raw.events` with COPY: one transaction per file, idempotent on messageId.

Each line is validated against the event contract. Good events are streamed with COPY into a temporary
table, then moved into `raw.events` with `ON CONFLICT DO NOTHING`, so replaying a file adds nothing.
Lines that fail validation go to `raw.events_rejected` with the payload and the reason. Everything for a
file commits together: a crash mid-load leaves no half batch.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from pydantic import ValidationError

from pulse.config import Settings
from pulse.db import warehouse_url
from pulse.events.contract import Event

EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "event_name",
    "user_id",
    "anonymous_id",
    "event_at",
    "sent_at",
    "received_at",
    "properties",
    "traits",
    "context",
    "source",
)
JSON_COLUMNS = {"properties", "traits", "context"}
EVENT_FILE_SUFFIXES = (".jsonl", ".json", ".ndjson")


@dataclass
class IngestResult:
    files: int = 0
    lines: int = 0
    inserted: int = 0  # new rows in raw.events
    duplicates: int = 0  # valid events whose messageId was already loaded
    rejected: int = 0  # lines sent to raw.events_rejected

    def __iadd__(self, other: IngestResult) -> IngestResult:
        for field in ("files", "lines", "inserted", "duplicates", "rejected"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        return self


@dataclass(frozen=True)
class Rejection:
    payload: str
    reason: str
    source: str
    line_number: int | None

    @property
    def rejected_id(self) -> str:
        key = f"{self.source}\x1f{self.line_number}\x1f{self.payload}"
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def expand_paths(path: str | Path) -> list[Path]:
    """A file, a directory (its event files) or a glob pattern, in a stable order."""
    candidate = Path(path)
    if candidate.is_dir():
        return sorted(p for p in candidate.iterdir() if p.is_file() and p.suffix in EVENT_FILE_SUFFIXES)
    if candidate.is_file():
        return [candidate]
    matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not matches:
        raise FileNotFoundError(f"no event files at {path}")
    return matches


def validation_reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        parts = []
        for item in error.errors(include_url=False):
            where = ".".join(str(x) for x in item["loc"]) or "event"
            parts.append(f"{where}: {item['msg']}")
        return "; ".join(parts)
    return f"{type(error).__name__}: {error}"


def parse_line(line: str, source: str, line_number: int, received_at: datetime) -> dict | Rejection:
    """One JSONL line to a `raw.events` row, or the reason it is rejected."""
    try:
        if "\x00" in line or "\\u0000" in line:
            raise ValueError("contains a NUL character, which PostgreSQL text cannot store")
        payload = json.loads(line)
        if not isinstance(payload, dict):
            raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        return Event.model_validate(payload).to_row(source, received_at)
    except (ValueError, ValidationError) as error:  # JSONDecodeError is a ValueError
        reason = (
            "invalid JSON: " + str(error)
            if isinstance(error, json.JSONDecodeError)
            else validation_reason(error)
        )
        printable = line.rstrip("\n").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return Rejection(
            payload=printable.replace("\x00", "\\x00"), reason=reason, source=source, line_number=line_number
        )


def load_rows(
    conn: psycopg.Connection, rows: Iterable[dict], rejections: Iterable[Rejection]
) -> tuple[int, int, int]:
    """Write rows and rejections inside the caller's transaction. Returns (valid, inserted, rejected)."""
    columns = ", ".join(EVENT_COLUMNS)
    with conn.cursor() as cur:
        cur.execute(
            "create temporary table if not exists _incoming_events "
            "(like raw.events including defaults) on commit delete rows"
        )
        cur.execute("truncate _incoming_events")
        valid = 0
        with cur.copy(f"copy _incoming_events ({columns}) from stdin") as copy:
            for row in rows:
                copy.write_row([json.dumps(row[c]) if c in JSON_COLUMNS else row[c] for c in EVENT_COLUMNS])
                valid += 1
        cur.execute(
            f"insert into raw.events ({columns}) "
            f"select distinct on (event_id) {columns} from _incoming_events "
            "order by event_id on conflict (event_id) do nothing"
        )
        inserted = cur.rowcount
        rejected_rows = [(r.rejected_id, r.payload, r.reason, r.source, r.line_number) for r in rejections]
        if rejected_rows:
            cur.executemany(
                "insert into raw.events_rejected (rejected_id, payload, reason, source, line_number) "
                "values (%s, %s, %s, %s, %s) on conflict (rejected_id) do nothing",
                rejected_rows,
            )
    return valid, inserted, len(rejected_rows)


def ingest_file(
    path: Path, settings: Settings | None = None, progress: Callable[[int], None] | None = None
) -> IngestResult:
    """Load one JSONL file in one transaction."""
    source = str(path.resolve())
    received_at = datetime.now(UTC)
    rejections: list[Rejection] = []
    lines = 0

    def good_rows() -> Iterator[dict]:
        nonlocal lines
        with path.open("r", encoding="utf-8", errors="surrogateescape") as handle:
            for number, line in enumerate(handle, start=1):
                if progress:
                    progress(len(line))
                if not line.strip():
                    continue
                lines += 1
                parsed = parse_line(line, source, number, received_at)
                if isinstance(parsed, Rejection):
                    rejections.append(parsed)
                else:
                    yield parsed

    with psycopg.connect(warehouse_url(settings)) as conn:  # commits on success, rolls back on error
        valid, inserted, rejected = load_rows(conn, good_rows(), rejections)
    return IngestResult(
        files=1, lines=lines, inserted=inserted, duplicates=valid - inserted, rejected=rejected
    )


def ingest_path(
    path: str | Path, settings: Settings | None = None, progress: Callable[[int], None] | None = None
) -> IngestResult:
    """Load a file, directory or glob; each file is its own transaction."""
    total = IngestResult()
    for file in expand_paths(path):
        total += ingest_file(file, settings, progress)
    return total
