"""Benchmark: the collector under concurrent clients posting Segment batches on loopback.

    .venv/bin/python bench/collector/run.py [--clients 8] [--batch 100] [--seconds 20] [--workers 1]

Starts `pulse serve` against a scratch database, runs `--clients` closed-loop clients (asyncio, a minimal
keep-alive HTTP/1.1 client, one process) that each post a batch of `--batch` realistic events, wait for the answer, and post the
next, for `--seconds` after a short warm-up. Prints acknowledged events/s, latency p50 / p99 / max,
non-200 answers, and loss: every acknowledged messageId is looked up in raw.events afterwards.
Goal: >= 25,000 events/s on 2 cores, p99 < 50 ms, zero loss (#13).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from sqlalchemy.engine import make_url

from pulse import db
from pulse.collector.process import CollectorProcess
from pulse.config import Settings
from pulse.events.load import ensure_raw_tables

KEY = "bench-write-key"
# A realistic event (about 600 bytes on the wire): ids, a timestamp, properties, context.
TEMPLATE = (
    '{"type":"track","event":"Product Viewed","messageId":"%s","anonymousId":"anon-%d","userId":"c%d",'
    '"timestamp":"2026-03-01T12:00:00.000Z","properties":{"product_id":"p-%d","category":"shoes",'
    '"price":59.9,"currency":"USD","position":3},"context":{"library":{"name":"analytics-python",'
    '"version":"2.4.0"},"page":{"url":"https://shop.example.com/p/%d","referrer":"https://www.google.com/"},'
    '"campaign":{"source":"newsletter","medium":"email","name":"spring"},"userAgent":"Mozilla/5.0 (X11; '
    'Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36","ip":"203.0.113.7"}}'
)


def body(run: str, client: int, seq: int, size: int) -> tuple[bytes, list[str]]:
    ids = [f"{run}-{client}-{seq}-{i}" for i in range(size)]
    events = ",".join(TEMPLATE % (m, client, i, i, seq) for i, m in enumerate(ids))
    return f'{{"batch":[{events}],"sentAt":"2026-03-01T12:00:01.000Z"}}'.encode(), ids


class Connection:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams: the load generator shares the 2 cores
    with the server, so it should cost as little CPU as possible (httpx costs several times more)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.auth = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
        self.reader = self.writer = None

    async def post(self, path: str, payload: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: {self.auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        try:
            self.writer.write(head + payload)
            await self.writer.drain()
            header = await self.reader.readuntil(b"\r\n\r\n")
            status = int(header[9:12])
            length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))
            await self.reader.readexactly(length)
            return status
        except (OSError, asyncio.IncompleteReadError, ValueError, AttributeError):
            self.writer.close()
            self.reader = self.writer = None
            raise ConnectionError("connection lost") from None


async def client_loop(url, run, client_no, size, warmup_end, end, latencies, acked, statuses):
    parsed = urlsplit(url)
    connection = Connection(parsed.hostname, parsed.port)
    seq = 0
    while time.perf_counter() < end:
        payload, ids = body(run, client_no, seq, size)
        seq += 1
        started = time.perf_counter()
        try:
            status = str(await connection.post("/v1/batch", payload))
        except ConnectionError as error:
            status = type(error).__name__
        finished = time.perf_counter()
        statuses[status] = statuses.get(status, 0) + 1
        if status == "200":
            acked.extend(ids)
            if started >= warmup_end and finished <= end:
                latencies.append(finished - started)


async def load(url: str, clients: int, size: int, seconds: float, warmup: float):
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    acked: list[str] = []
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    warmup_end, end = start + warmup, start + warmup + seconds
    await asyncio.gather(
        *(client_loop(url, run, c, size, warmup_end, end, latencies, acked, statuses) for c in range(clients))
    )
    return latencies, acked, statuses


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--url", default=os.environ.get("PULSE_DATABASE_URL"))
    args = parser.parse_args()

    server = args.url or db.warehouse_url(Settings(database_url=None))
    name = f"pulse_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(server).set(database="postgres").render_as_string(hide_password=False)
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        home = Path(tempfile.mkdtemp(prefix="pulse-bench-collector-"))
        ensure_raw_tables(url)
        env = {"PULSE_DATABASE_URL": url, "PULSE_WRITE_KEY": KEY, "PULSE_HOME": str(home)}
        with CollectorProcess(env, workers=args.workers, log_path=home / "collector.log") as collector:
            latencies, acked, statuses = asyncio.run(
                load(collector.url, args.clients, args.batch, args.seconds, args.warmup)
            )
        with psycopg.connect(url) as conn:
            found = conn.execute(
                "select count(*) from raw.events where event_id = any(%s)", (acked,)
            ).fetchone()[0]
        measured = len(latencies) * args.batch
        cuts = statistics.quantiles(latencies, n=100)
        print(
            f"{args.clients} clients x batches of {args.batch}, {args.workers} worker(s), "
            f"{args.seconds:g} s measured after {args.warmup:g} s warm-up"
        )
        print(
            f"throughput : {measured / args.seconds:,.0f} events/s acknowledged ({len(latencies):,} requests)"
        )
        print(
            f"latency    : p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )
        print(f"answers    : {dict(sorted(statuses.items()))}")
        print(
            f"loss       : {len(acked) - found} of {len(acked):,} acknowledged events missing from raw.events"
        )
        return 0 if found == len(acked) else 1
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


if __name__ == "__main__":
    sys.exit(main())
