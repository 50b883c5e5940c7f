"""The parser process of `pulse ingest`: parses one JSONL file into COPY frames on its stdout.

    python -m pulse.events.parse_worker PATH SOURCE RECEIVED_AT

Started by `pulse.events.ingest` for big files, which streams the frames to PostgreSQL while this
process parses the next block (see `ingest.FRAME` for the frame format). Anything else this process
might print goes to stderr, so stdout carries frames only.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path


def main(argv: list[str]) -> int:
    path, source, received = argv
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 20)  # frames only: stray prints go to stderr
    os.dup2(2, 1)

    from pulse.events.ingest import FRAME, parser_frames

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
