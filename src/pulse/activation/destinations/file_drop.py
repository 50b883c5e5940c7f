"""File drop: every run writes one CSV or JSONL file of its changes into a folder.

Rows are appended per batch and flushed to disk before the batch is acknowledged; the file is named
`<folder>/<UTC start>_<run id>.<csv|jsonl>` once the run ends (`.part` while it runs). A `.part` left by
a killed run is renamed `..._interrupted.<format>` by the next run: what it holds was delivered (its
checkpointed rows are not sent again; a batch written but not checkpointed appears again in the next file,
with the same idempotency key).

Columns: operation, customer_id, idempotency_key, then the sync's mapped fields. A relative folder is
under PULSE_HOME.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from pulse.activation.destinations.base import ConfigError, Destination, Outcome, Record, all_accepted
from pulse.csv_export import SafeCsvWriter


class FileDropDestination(Destination):
    kind = "file_drop"
    max_batch = 50_000

    def __init__(self, options: Mapping[str, Any], *, rate: float | None = None, concurrency: int = 1):
        super().__init__(options, rate=rate, concurrency=1)  # one writer: rows stay in plan order
        self.format = options.get("format", "csv")
        if self.format not in ("csv", "jsonl"):
            raise ConfigError("file_drop: `format` is csv or jsonl")
        folder = Path(str(options.get("folder") or "exports/syncs")).expanduser()
        if not folder.is_absolute():
            from pulse.config import get_settings

            folder = get_settings().home_dir / folder
        self.folder = folder
        self.lock = threading.Lock()
        self.handle: io.TextIOWrapper | None = None
        self.columns: list[str] | None = None
        self.path: Path | None = None

    def start(self, run_id: str) -> None:
        from pulse.exports import record_export

        self.folder.mkdir(parents=True, exist_ok=True)
        record_export(self.folder, f"{self.kind} sync", None)  # `pulse forget` looks here too
        for stale in self.folder.glob(f"*.{self.format}.part"):
            stale.rename(
                stale.with_name(
                    stale.name.removesuffix(f".{self.format}.part") + f"_interrupted.{self.format}"
                )
            )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")  # to the microsecond: files sort by start
        self.path = self.folder / f"{stamp}_{run_id}.{self.format}"
        self.handle = open(self.path.with_name(self.path.name + ".part"), "a", newline="", encoding="utf-8")  # noqa: SIM115

    def _lines(self, batch: Sequence[Record]) -> str:
        rows = [
            {"operation": r.operation, "customer_id": r.customer_id, "idempotency_key": r.key, **r.fields}
            for r in batch
        ]
        if self.format == "jsonl":
            return "".join(msgspec.json.encode(row).decode() + "\n" for row in rows)
        buffer = io.StringIO()
        writer = SafeCsvWriter(buffer)
        if self.columns is None:
            self.columns = list(rows[0]) if rows else []
            writer.writerow(self.columns)
        writer.writerows([row.get(column, "") for column in self.columns] for row in rows)
        return buffer.getvalue()

    def send(self, batch: Sequence[Record], batch_key: str, mode: str) -> list[Outcome]:
        if self.handle is None:
            raise ConfigError("file_drop: send before start")
        with self.lock:
            self.handle.write(self._lines(batch))
            self.handle.flush()
            os.fsync(self.handle.fileno())
        return all_accepted(batch, None)

    def preview(self, batch: Sequence[Record], batch_key: str, mode: str) -> dict[str, Any]:
        return {"file": str(self.folder / f"<start>_<run>.{self.format}"), "content": self._lines(batch)}

    def finish(self, ok: bool) -> None:
        if self.handle is not None and self.path is not None:
            self.handle.close()
            self.handle = None
            self.path.with_name(self.path.name + ".part").rename(self.path)
