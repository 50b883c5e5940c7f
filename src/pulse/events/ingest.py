"""Load event files into `raw.events` with COPY: one transaction per file, idempotent on messageId.

Formats, chosen by file name (a `.gz` suffix is read through gzip):
- `.jsonl` / `.ndjson`: one Segment event per line;
- `.json`: a Segment batch (`{"batch": [...], "sentAt": ..., "context": {...}}`), an array of events,
  one event, or, if the file is not one JSON document, JSON lines;
- `.csv`: one event per row; columns are Segment field names (`type`, `event`, `messageId`, `userId`,
  `anonymousId`, `timestamp`, ... or their snake_case forms), `properties` / `traits` / `context`
  columns holding JSON objects, and dotted columns (`properties.price`) for single values. Cells that
  look like JSON numbers or `true` / `false` become numbers and booleans; empty cells are absent;
  `type` defaults to `track` when the row names an `event`.

Every event is validated against the one contract (`pulse.events.contract.Event`); well-formed events
without PII take its fast path (`pulse.events.fast`, the same rows without building a pydantic model).
Good events stream with COPY into `raw.events` while later lines are still being parsed
(`pulse.events.load`); JSONL files of `PARALLEL_MIN_BYTES` or more are parsed by a separate parser
process (`pulse.events.parse_worker`) into ready COPY text, so parsing overlaps with PostgreSQL storing
the rows (on 2 cores: one for each). Replays add nothing. Lines that fail validation go to `raw.events_rejected` with the payload, the reason, the file
and the line (or position in the batch). Everything for a file commits together: a crash mid-load leaves
no half batch.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import pickle
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import msgspec
import psycopg
from pydantic import ValidationError

from pulse.config import Settings
from pulse.db import warehouse_url
from pulse.events import parse_worker
from pulse.events.contract import EVENT_COLUMNS, JSON_COLUMNS, Event, utc_now
from pulse.events.lines import (
    PROGRESS_EVERY,
    Progress,
    check_storable,
    copy_line,
    line_blocks,
    parse_block,
    parse_line,
    reading,
    validation_reason,
)
from pulse.events.load import CopyBlock, Rejection, write_copy, write_events, write_rejections

__all__ = [
    "EVENT_COLUMNS",
    "JSON_COLUMNS",
    "IngestResult",
    "copy_line",
    "Rejection",
    "expand_paths",
    "ingest_file",
    "ingest_path",
    "parse_block",
    "parse_line",
    "parse_payload",
]

EVENT_FILE_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv")
# JSONL files at least this big are parsed by a parser process while this one streams the COPY; smaller
# ones in this process (starting the parser, about half a second, costs more than it saves).
PARALLEL_MIN_BYTES = 16 << 20


@dataclass
class IngestResult:
    files: int = 0
    lines: int = 0
    inserted: int = 0  # new rows in raw.events
    duplicates: int = 0  # valid events whose messageId was already loaded
    rejected: int = 0  # lines sent to raw.events_rejected

    def __iadd__(self, other: IngestResult) -> IngestResult:
        for name in ("files", "lines", "inserted", "duplicates", "rejected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


def _format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    return {".csv": "csv", ".json": "json"}.get(suffix, "jsonl")


def _is_event_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.removesuffix(".gz").endswith(EVENT_FILE_SUFFIXES)


def expand_paths(path: str | Path) -> list[Path]:
    """A file, a directory (its event files) or a glob pattern, in a stable order."""
    candidate = Path(path)
    if candidate.is_dir():
        return sorted(p for p in candidate.iterdir() if _is_event_file(p))
    if candidate.is_file():
        return [candidate]
    matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    if not matches:
        raise FileNotFoundError(f"no event files at {path}")
    return matches


def parse_payload(
    payload: Any,
    source: str,
    position: int | None,
    received_at: datetime,
    raw: bytes | str | None = None,
    scrub_pii: bool = True,
    check_encoding: bool = False,
) -> tuple | Rejection:
    """An already-decoded event (from a batch, a CSV row or the collector) to a row or a rejection.

    `scrub_pii=False` only when `pii.maybe_pii` found nothing in the event's raw JSON;
    `check_encoding=True` when strings may hold undecodable bytes (text read with surrogateescape)."""
    try:
        if not isinstance(payload, dict):
            raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        row = Event.model_validate(payload).copy_row(source, received_at, scrub_pii=scrub_pii)
        check_storable(row, check_encoding)
        return row
    except (ValidationError, ValueError, TypeError, OverflowError, UnicodeError) as error:
        if raw is None:
            raw = json.dumps(payload, ensure_ascii=False, default=str)
        return Rejection.of(raw, validation_reason(error), source, position)


def _jsonl_rows(
    handle: IO[bytes], progress: Progress, source: str, received_at: datetime, state: _State
) -> Iterator[tuple]:
    since = 0
    for number, line in enumerate(handle, start=1):
        since += len(line)
        if since >= PROGRESS_EVERY:
            progress.update()
            since = 0
        if not line.strip():
            continue
        state.lines += 1
        parsed = parse_line(line, source, number, received_at)  # looked up each call: tests patch it
        if isinstance(parsed, Rejection):
            state.rejections.append(parsed)
        else:
            yield parsed


def _payload_rows(
    payloads: Iterator[tuple[int, Any, bytes | str | None]], source: str, received_at: datetime, state: _State
) -> Iterator[tuple]:
    for position, payload, raw in payloads:
        state.lines += 1
        parsed = parse_payload(payload, source, position, received_at, raw, check_encoding=True)
        if isinstance(parsed, Rejection):
            state.rejections.append(parsed)
        else:
            yield parsed


def batch_events(document: Any) -> list[Any] | None:
    """The events of a Segment batch document, with batch-level `sentAt` / `context` applied; None if
    the document is not a batch or an array of events."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("batch"), list):
        sent_at, context = document.get("sentAt"), document.get("context")
        events = []
        for item in document["batch"]:
            if isinstance(item, dict):
                if sent_at is not None and "sentAt" not in item:
                    item = {**item, "sentAt": sent_at}
                if isinstance(context, dict):
                    own = item.get("context")
                    item = {**item, "context": {**context, **own} if isinstance(own, dict) else context}
            events.append(item)
        return events
    if isinstance(document, dict):
        return [document]
    return None


_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d{0,17})(?:\.\d+)?(?:[eE][+-]?\d+)?")
_CSV_NAMES = {
    "message_id": "messageId",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "previous_id": "previousId",
    "group_id": "groupId",
    "sent_at": "sentAt",
    "received_at": "receivedAt",
    "original_timestamp": "originalTimestamp",
    "event_type": "type",
    "event_name": "event",
}


def _cell(text: str) -> Any:
    if _NUMBER_RE.fullmatch(text):
        return json.loads(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def csv_row_to_payload(row: dict[str | None, Any]) -> dict[str, Any]:
    """A CSV row (header names as keys) to a Segment-shaped event."""
    event: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or value == "":
            continue  # extra cells without a header, or empty cells
        name = _CSV_NAMES.get(key.strip(), key.strip())
        head, _, rest = name.partition(".")
        if head in JSON_COLUMNS and rest:
            target = event.setdefault(head, {})
            if not isinstance(target, dict):
                continue
            *parents, leaf = rest.split(".")
            for part in parents:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    break
            else:
                target[leaf] = _cell(value)
        elif name in JSON_COLUMNS and value.lstrip().startswith("{"):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = value  # validation says why
            existing = event.get(name)
            event[name] = (
                {**parsed, **existing} if isinstance(existing, dict) and isinstance(parsed, dict) else parsed
            )
        else:
            event[name] = value
    if "type" not in event and "event" in event:
        event["type"] = "track"
    return event


@dataclass
class _State:
    lines: int = 0
    rejections: list[Rejection] = field(default_factory=list)


def _rows(path: Path, source: str, received_at: datetime, state: _State, progress_cb) -> Iterator[tuple]:
    with reading(path, progress_cb) as (reader, progress):
        kind = _format(path)
        if kind == "jsonl":
            yield from _jsonl_rows(reader, progress, source, received_at, state)
        elif kind == "json":
            data = reader.read()
            try:
                events = batch_events(msgspec.json.decode(data))
            except (msgspec.DecodeError, UnicodeDecodeError):
                events = None
            if events is None:  # not one JSON document: JSON lines with a .json name
                yield from _jsonl_rows(io.BytesIO(data), progress, source, received_at, state)
            else:
                yield from _payload_rows(
                    ((i, e, None) for i, e in enumerate(events, start=1)), source, received_at, state
                )
        else:
            text = io.TextIOWrapper(reader, encoding="utf-8-sig", errors="surrogateescape", newline="")
            rows = csv.DictReader(text)

            def payloads() -> Iterator[tuple[int, Any, str]]:
                for row in rows:
                    progress.update()
                    raw_row = json.dumps(row, ensure_ascii=False)
                    yield rows.line_num, csv_row_to_payload(row), raw_row

            yield from _payload_rows(payloads(), source, received_at, state)


def _jsonl_copy_blocks(
    path: Path, source: str, received_at: datetime, state: _State, progress_cb
) -> Iterator[CopyBlock]:
    """The file's rows as COPY blocks, parsed in this process."""
    with reading(path, progress_cb) as (reader, progress):
        for block, first_line in line_blocks(reader, progress):
            parsed = parse_block(block, first_line, source, received_at)
            state.lines += parsed.lines
            state.rejections.extend(parsed.rejections)
            yield parsed.copy


def _jsonl_copy_blocks_from_parser(
    path: Path, source: str, received_at: datetime, state: _State, progress_cb
) -> Iterator[CopyBlock]:
    """The file's rows as COPY blocks, parsed by a separate process while this one streams them to
    PostgreSQL: parsing a block overlaps with the server storing the one before."""
    for kind, number, payload in parse_worker.frames_of(path, source, received_at):
        if kind == b"C":
            yield CopyBlock(payload, number)
        elif kind == b"R":
            state.rejections.extend(pickle.loads(payload))  # noqa: S301 - our own child process
        elif kind == b"P":
            if progress_cb is not None:
                progress_cb(number)
        elif kind == b"E":
            state.lines += number


def ingest_file(
    path: Path,
    settings: Settings | None = None,
    progress: Callable[[int], None] | None = None,
    parallel: bool | None = None,
) -> IngestResult:
    """Load one file (JSONL, Segment batch JSON or CSV, optionally gzipped) in one transaction.

    JSONL is parsed by a parser process while this one streams the COPY when `parallel` is true; by
    default for files of PARALLEL_MIN_BYTES or more."""
    source = str(path.resolve())
    received_at = utc_now()
    state = _State()
    with psycopg.connect(warehouse_url(settings)) as conn:  # commits on success, rolls back on error
        if _format(path) == "jsonl":
            if parallel is None:
                parallel = path.stat().st_size >= PARALLEL_MIN_BYTES
            produce = _jsonl_copy_blocks_from_parser if parallel else _jsonl_copy_blocks
            written = write_copy(conn, produce(path, source, received_at, state, progress))
        else:
            written = write_events(conn, _rows(path, source, received_at, state, progress))
        rejected = write_rejections(conn, state.rejections)
    return IngestResult(
        files=1,
        lines=state.lines,
        inserted=written.inserted,
        duplicates=written.valid - written.inserted - written.forgotten,
        rejected=rejected + written.forgotten,  # events of forgotten people: rejected at load
    )


def ingest_path(
    path: str | Path,
    settings: Settings | None = None,
    progress: Callable[[int], None] | None = None,
    parallel: bool | None = None,
) -> IngestResult:
    """Load a file, directory or glob; each file is its own transaction."""
    total = IngestResult()
    for file in expand_paths(path):
        total += ingest_file(file, settings, progress, parallel)
    return total
