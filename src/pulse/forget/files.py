"""Removing the person from audience exports, file-drop syncs and landed event files (see `pulse.forget`)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pulse.config import Settings, get_settings
from pulse.csv_export import unescape_cell
from pulse.events.pii import is_email, normalise_email, sha256
from pulse.exports import export_files
from pulse.forget.identities import HASHED_ID_PREFIX, Identities, hash_forms

# Where an event record (a landed file's line, a Segment payload) names a person.
RECORD_ID_KEYS = ("userId", "user_id", "anonymousId", "anonymous_id", "previousId", "previous_id")


def _open_text(path: Path, mode: str):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8", newline="")
    return path.open(mode, encoding="utf-8", newline="")


def _names(record: Any, ids: set[str]) -> bool:
    """The event record names one of `ids` (ids, or email hashes: an `email_sha256`, a `sha256:<hex>`
    value, or an address hashed here, at any depth)."""
    return isinstance(record, dict) and (
        any(record.get(key) in ids for key in RECORD_ID_KEYS)
        or any(h in ids for h in _email_hashes_in(record))
    )


def _email_hashes_in(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key == "email_sha256" and isinstance(child, str):
                    yield child
                else:
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if item.startswith(HASHED_ID_PREFIX):
                yield item.removeprefix(HASHED_ID_PREFIX)
            elif is_email(item):  # a landed file holds addresses before they are hashed
                yield sha256(normalise_email(item))


def _kept_event_records(path: Path, ids: set[str]) -> tuple[str | None, int]:
    """The file's text without the person's records (None: the file held only theirs), and how many
    records were removed."""
    from pulse.events.ingest import csv_row_to_payload

    with _open_text(path, "r") as handle:
        text = handle.read()
    stem = path.name.lower().removesuffix(".gz")
    if stem.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        kept = [row for row in rows if not _names(csv_row_to_payload(row), ids)]
        if len(kept) == len(rows):
            return text, 0
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0].keys()) if rows else [])
        writer.writeheader()
        writer.writerows(kept)
        return out.getvalue(), len(rows) - len(kept)
    if stem.endswith(".json"):
        try:
            document = json.loads(text)
        except ValueError:
            document = None  # JSON lines under a .json name
        if isinstance(document, (list, dict)):
            items = document.get("batch") if isinstance(document, dict) else document
            if isinstance(items, list):
                kept = [item for item in items if not _names(item, ids)]
                if isinstance(document, dict):
                    document = {**document, "batch": kept}
                else:
                    document = kept
                return json.dumps(document, ensure_ascii=False), len(items) - len(kept)
            if _names(document, ids):  # a single event, theirs
                return None, 1
            return text, 0
    lines = text.splitlines(keepends=True)
    kept_lines = [line for line in lines if not _line_names(line, ids)]
    return "".join(kept_lines), len(lines) - len(kept_lines)


def _line_names(line: str, ids: set[str]) -> bool:
    # Cheap test first: most lines are someone else's (a line with an email is parsed to hash it).
    if "@" not in line and not any(value in line for value in ids):
        return False
    try:
        return _names(json.loads(line), ids)
    except ValueError:
        return False


def _rewrite(path: Path, text: str) -> None:
    """Replace `path` atomically, keeping its modification time (ingest windows are chosen by it)."""
    stat = path.stat()
    tmp = path.with_name(f".{path.name}.forget-{uuid.uuid4().hex[:8]}")
    with _open_text(tmp, "w") as handle:
        handle.write(text)
    os.utime(tmp, (stat.st_atime, stat.st_mtime))
    os.replace(tmp, path)


def _event_files(settings: Settings) -> list[Path]:
    from pulse.events.ingest import EVENT_FILE_SUFFIXES

    landing = settings.landing_dir
    if not landing.is_dir():
        return []
    return sorted(
        p
        for p in landing.rglob("*")
        if p.is_file() and p.name.lower().removesuffix(".gz").endswith(EVENT_FILE_SUFFIXES)
    )


_EXPORT_ID_COLUMNS = ("customer_id", "email_sha256")


def _kept_export_rows(path: Path, identities: Identities) -> tuple[str, int]:
    """An export's text without the person's rows, and how many of theirs there were: a row is theirs
    when its `customer_id` or `email_sha256` is one of their values."""
    values = set(identities.values) | set(hash_forms(identities.email_hashes))
    if path.name.lower().endswith(".jsonl"):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept_lines = [line for line in lines if not _export_line_names(line, values)]
        return "".join(kept_lines), len(lines) - len(kept_lines)
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return "", 0
    header, body = rows[0], rows[1:]
    columns = [i for i, name in enumerate(header) if name in _EXPORT_ID_COLUMNS]
    kept = [row for row in body if not any(i < len(row) and unescape_cell(row[i]) in values for i in columns)]
    out = io.StringIO()
    csv.writer(out).writerows([header, *kept])
    return out.getvalue(), len(body) - len(kept)


def _export_line_names(line: str, values: set[str]) -> bool:
    if not any(value in line for value in values):  # most lines are someone else's
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and any(record.get(c) in values for c in _EXPORT_ID_COLUMNS)


def files_naming(identities: Identities, settings: Settings) -> Iterator[tuple[Path, str | None, int]]:
    """(file, its text without the person or None to delete it, how many of their rows or records) for
    every export and landed event file that holds any: what `forget_files` rewrites and `verify` must
    not find."""
    for path in export_files(settings):
        kept, count = _kept_export_rows(path, identities)
        if count:
            yield path, kept, count
    ids = set(identities.all_ids) | set(identities.email_hashes)
    for path in _event_files(settings) if ids else []:
        text, count = _kept_event_records(path, ids)
        if count:
            yield path, text, count


def forget_files(identities: Identities, settings: Settings | None = None) -> dict[str, int]:
    """Remove the person's rows from audience exports and their records from landed event files."""
    settings = settings or get_settings()
    removed: dict[str, int] = {}
    for path, text, count in list(files_naming(identities, settings)):
        if text is None:
            path.unlink()
        else:
            _rewrite(path, text)
        removed[str(path)] = count
    return removed
