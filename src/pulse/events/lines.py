"""JSON lines to `raw.events` rows: the parsing `pulse ingest` runs, in its own process or in its parser
process (`pulse.events.parse_worker`)."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from pulse.events.contract import Event
from pulse.events.fast import copy_text, row_from_json
from pulse.events.load import CopyBlock, Rejection
from pulse.events.pii import maybe_pii

PROGRESS_EVERY = 256 * 1024  # bytes between progress callbacks (a callback per line costs more than parsing)
BLOCK_BYTES = 1 << 20  # JSONL is parsed in blocks of whole lines of about this size


def validation_reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        parts = []
        for item in error.errors(include_url=False, include_input=False):
            if item["type"] == "json_invalid":
                return "invalid JSON: " + str(item.get("ctx", {}).get("error", item["msg"]))
            where = ".".join(str(x) for x in item["loc"]) or "event"
            parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
        return "; ".join(parts)
    if isinstance(error, ValueError):
        return str(error)
    return f"{type(error).__name__}: {error}"


_NUL_TEXT = "\x00"
_NUL_JSON = "\\u0000"
_NUL_JSON_BYTES = b"\\u0000"


def check_storable(row: tuple[Any, ...], check_encoding: bool = False) -> None:
    """PostgreSQL text cannot hold NUL, nor jsonb `\\u0000`; text must be valid UTF-8."""
    for value in row:
        if isinstance(value, str):
            if _NUL_TEXT in value or _NUL_JSON in value:
                raise ValueError("contains a NUL character, which PostgreSQL text cannot store")
            if check_encoding:
                value.encode("utf-8")


def parse_line(line: bytes | str, source: str, line_number: int, received_at: datetime) -> tuple | Rejection:
    """One JSON line to a `raw.events` row (a COPY tuple), or the reason it is rejected.

    The hot path of bulk loads: pydantic parses and validates the bytes in one step, and the PII scrub
    runs only when the raw line could hold PII at all.
    """
    data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
    try:
        row = Event.model_validate_json(data).copy_row(source, received_at, scrub_pii=maybe_pii(data))
        if _NUL_JSON_BYTES in data:  # JSON cannot hold a raw NUL byte, only this escape
            check_storable(row)
        return row
    except (ValidationError, ValueError, TypeError, OverflowError, UnicodeError) as error:
        return Rejection.of(data, validation_reason(error), source, line_number)


def copy_line(line: bytes, source: str, line_number: int, received_at: datetime) -> bytes | Rejection:
    """One JSON line as a COPY text line for `raw.events`, or the reason it is rejected.

    Well-formed events take the fast path (`pulse.events.fast`), the rest the full contract
    (`parse_line`); both give the same row for the same event."""
    row = row_from_json(line, source, received_at)
    if row is None:
        parsed = parse_line(line, source, line_number, received_at)
        if isinstance(parsed, Rejection):
            return parsed
        row = parsed
    return copy_text(row).encode("utf-8")


@dataclass
class ParsedBlock:
    """A block of JSONL lines parsed: its good rows as COPY text, and its rejects."""

    copy: CopyBlock
    rejections: list[Rejection]
    lines: int  # non-blank lines


def parse_block(data: bytes, first_line: int, source: str, received_at: datetime) -> ParsedBlock:
    """Whole JSONL lines (`data` ends at a line end) numbered from `first_line`. Runs in workers too."""
    out: list[bytes] = []
    rejections: list[Rejection] = []
    lines = 0
    for number, line in enumerate(data.split(b"\n"), start=first_line):
        if not line.strip():
            continue
        lines += 1
        parsed = copy_line(line, source, number, received_at)  # looked up each call: tests patch it
        if isinstance(parsed, Rejection):
            rejections.append(parsed)
        else:
            out.append(parsed)
    return ParsedBlock(CopyBlock(b"".join(out), len(out)), rejections, lines)


def line_blocks(handle: IO[bytes], progress: Progress) -> Iterator[tuple[bytes, int]]:
    """(block, number of its first line): the file cut at line ends into blocks of about BLOCK_BYTES."""
    first_line, parts = 1, []  # parts: the start of a line that continues in the next read
    while chunk := handle.read(BLOCK_BYTES):
        progress.update()
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:  # no line ends here (a line longer than a block): keep reading
            parts.append(chunk)
            continue
        parts.append(chunk[:cut] if cut < len(chunk) else chunk)
        block = b"".join(parts) if len(parts) > 1 else parts[0]
        parts = [chunk[cut:]] if cut < len(chunk) else []
        yield block, first_line
        first_line += block.count(b"\n")
    if parts:
        yield b"".join(parts), first_line


def open_binary(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(reader, raw file): reader decompresses `.gz`; progress is measured on the raw file."""
    raw: IO[bytes] = path.open("rb")
    if path.name.lower().endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]  # a binary IO
    return raw, raw


class Progress:
    def __init__(self, callback: Callable[[int], None] | None, raw: IO[bytes]):
        self.callback, self.raw, self.reported = callback, raw, 0

    def update(self, final: bool = False) -> None:
        if self.callback is None:
            return
        position = self.raw.tell() if not self.raw.closed else self.reported
        if final or position - self.reported >= PROGRESS_EVERY:
            self.callback(position - self.reported)
            self.reported = position


@contextmanager
def reading(path: Path, progress_cb: Callable[[int], None] | None) -> Iterator[tuple[IO[bytes], Progress]]:
    """The file's reader (decompressing `.gz`) and its progress; reports the rest and closes on exit."""
    reader, raw = open_binary(path)
    progress = Progress(progress_cb, raw)
    try:
        yield reader, progress
        progress.update(final=True)
    finally:
        reader.close()
        raw.close()
