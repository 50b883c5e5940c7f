"""The parser process of `pulse ingest` and its wire protocol: one JSONL file parsed into COPY frames.

    python -m pulse.events.parse_worker PATH SOURCE RECEIVED_AT

`pulse.events.ingest` starts it for big files (`frames_of`) and streams the frames to PostgreSQL while
this process parses the next block. A frame is its kind (1 byte), a number, a payload length, then the
payload: C, COPY rows (number = rows); R, pickled rejects; P, progress (number = bytes of the file
read); E, the end (number = lines). Anything else this process might print goes to stderr, so stdout
carries frames only.

A process of its own (not `multiprocessing`): nothing of the caller's `__main__` is re-imported and no
thread state is forked. If it fails or dies, `frames_of` raises and the file's transaction rolls back.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from pulse.events.lines import line_blocks, parse_block, reading

FRAME = struct.Struct("!cQQ")
COMMAND = [sys.executable, "-m", "pulse.events.parse_worker"]


def parser_frames(
    path: Path, source: str, received_at: datetime, send: Callable[[bytes, int, bytes], None]
) -> None:
    """Parse a JSONL file and `send` its frames: what the parser process runs."""
    lines = 0
    with reading(path, lambda n: send(b"P", n, b"")) as (reader, progress):
        for block, first_line in line_blocks(reader, progress):
            parsed = parse_block(block, first_line, source, received_at)
            lines += parsed.lines
            if parsed.rejections:
                send(b"R", len(parsed.rejections), pickle.dumps(parsed.rejections))
            send(b"C", parsed.copy.rows, parsed.copy.data)
    send(b"E", lines, b"")


def _read_exactly(stream: IO[bytes], n: int) -> bytes | None:
    data = stream.read(n)
    return data if len(data) == n else None


def frames_of(path: Path, source: str, received_at: datetime) -> Iterator[tuple[bytes, int, bytes]]:
    """Start a parser process for `path` and yield its frames (kind, number, payload) up to the end."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    parser = subprocess.Popen(
        [*COMMAND, str(path), source, received_at.isoformat()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env=env,
    )
    stdout = parser.stdout
    assert stdout is not None  # stdout=PIPE
    try:
        while True:
            header = _read_exactly(stdout, FRAME.size)
            if header is None:
                code = parser.wait()
                raise RuntimeError(f"the parser process for {path} stopped early (exit code {code})")
            kind, number, size = FRAME.unpack(header)
            payload = _read_exactly(stdout, size) if size else b""
            if payload is None:
                raise RuntimeError(f"the parser process for {path} stopped mid-frame")
            if kind not in (b"C", b"R", b"P", b"E"):
                raise RuntimeError(f"the parser process for {path} sent an unknown frame {kind!r}")
            yield kind, number, payload
            if kind == b"E":
                break
        if parser.wait() != 0:
            raise RuntimeError(f"the parser process for {path} failed (exit code {parser.returncode})")
    finally:
        if parser.poll() is None:
            parser.kill()
            parser.wait()
        stdout.close()


def main(argv: list[str]) -> int:
    path, source, received = argv
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 20)  # frames only: stray prints go to stderr
    os.dup2(2, 1)

    def send(kind: bytes, number: int, payload: bytes) -> None:
        out.write(FRAME.pack(kind, number, len(payload)))
        out.write(payload)
        if kind in (b"C", b"E"):
            out.flush()

    parser_frames(Path(path), source, datetime.fromisoformat(received), send)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
