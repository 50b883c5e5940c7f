"""Benchmark: real-time triggers at 1,000 entries a second with 30-second waits, on loopback.

    .venv/bin/python bench/triggers/run.py [--seconds 300] [--rate 1000] [--batch 10] [--wait 30]

In a scratch database, two phases against `pulse serve` (one uvicorn worker), the same open-loop load:
`--rate` "Checkout Started" events a second (each a new customer, cart value 80), posted as `/v1/batch`
requests of `--batch` events at fixed times (a late answer does not slow the sender; each request's
acknowledgement time is measured from when it was due, so queueing counts).

1. Triggers off (`PULSE_TRIGGERS_ENABLED=false`: no trigger worker) for `--seconds`: the collector's
   ack p50 / p99.
2. Triggers on for `--seconds` (`pulse serve` runs the trigger worker, `pulse triggers run`, as a child
   process; the trigger is synced after phase 1, so the worker's stream begins there), one trigger (entry `checkout_started` with `value > 50`, a `--wait`
   wait cancelled by `order_completed`, no grace period, 10% holdout, no consent required) firing to a
   local webhook receiver (bench/receiver.py, its own process). Ack p50 / p99 again, then the last
   timers are waited for.
Latency per fired timer: from its deadline (entry event time + wait) to the receiver reading the
request, p50 / p95 / p99 / max. Checks: every treatment timer fired exactly once (receiver rows by
idempotency key), none pending. Goals (issue #17): latency p95 <= 2 s, ack p99 (on) <= 1.1 x ack p99 (off).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import yaml

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
from receiver import Receiver  # noqa: E402
from scratch import scratch_database  # noqa: E402

from pulse import db  # noqa: E402
from pulse.collector.process import CollectorProcess  # noqa: E402
from pulse.config import Settings  # noqa: E402
from pulse.events.load import ensure_raw_tables  # noqa: E402
from pulse.triggers.state import sync_triggers  # noqa: E402

# The collector benchmark's minimal keep-alive client (cheap on CPU: the load shares the cores).
_spec = importlib.util.spec_from_file_location("bench_collector", BENCH / "collector" / "run.py")
bench_collector = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_collector)
KEY = bench_collector.KEY
URL_ENV = "PULSE_BENCH_TRIGGER_URL"
CONNECTIONS = 32


def request_body(phase: str, n: int, size: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "type": "track",
            "event": "Checkout Started",
            "userId": f"{phase}-{n}-{i}",
            "messageId": f"{phase}-{n}-{i}-{uuid.uuid4().hex[:8]}",
            "timestamp": now,
            "properties": {"value": 80, "currency": "USD", "cart_id": f"cart-{n}-{i}"},
        }
        for i in range(size)
    ]
    return json.dumps({"batch": events}).encode()


async def open_loop(
    url: str, phase: str, rate: float, size: int, seconds: float
) -> tuple[list[float], Counter]:
    """Post a batch every size/rate seconds for `seconds`; latency from each request's due time."""
    parsed = urlsplit(url)
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(bench_collector.Connection(parsed.hostname, parsed.port))
    latencies: list[float] = []
    statuses: Counter = Counter()

    async def one(n: int, due: float) -> None:
        connection = await pool.get()
        try:
            status = str(await connection.post("/v1/batch", request_body(phase, n, size)))
        except ConnectionError as error:
            status = type(error).__name__
        latencies.append(time.perf_counter() - due)
        statuses[status] += 1
        pool.put_nowait(connection)

    interval, count = size / rate, int(seconds * rate / size)
    start, tasks = time.perf_counter(), []
    for n in range(count):
        due = start + n * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    return latencies, statuses


def cuts(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": max(values)}


def trigger_yaml(folder: Path, wait: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_abandoned.yml").write_text(
        yaml.safe_dump(
            {
                "name": "bench_abandoned",
                "description": "benchmark: checkout without an order",
                "entry": {"event": "checkout_started", "where": ["value > 50"]},
                "wait": {"duration": wait, "cancel_on": ["order_completed"], "grace": 0},
                "holdout_pct": 10,
                "destination": {"type": "webhook", "url_env": URL_ENV},
                "payload": {"customer_id": "customer_id", "entry_at": "entry_at"},
            }
        )
    )


def timer_statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute("select status, count(*) from activation.trigger_timers group by 1").fetchall()
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300, help="load per phase (the issue: five minutes)")
    parser.add_argument("--rate", type=float, default=1000, help="trigger entries per second")
    parser.add_argument("--batch", type=int, default=10, help="events per /v1/batch request")
    parser.add_argument("--wait", type=int, default=30, help="the trigger's wait, seconds")
    parser.add_argument("--url", default=os.environ.get("PULSE_DATABASE_URL"))
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="pulse-bench-triggers-"))
    with scratch_database(args.url) as url:
        settings = Settings(database_url=url, home=home)
        db.create_schemas(settings)
        ensure_raw_tables(url)
        base = {"PULSE_DATABASE_URL": url, "PULSE_WRITE_KEY": KEY, "PULSE_HOME": str(home)}
        with Receiver(keep=True) as receiver:
            env = {**base, URL_ENV: receiver.url + "/hook"}
            with CollectorProcess(
                {**env, "PULSE_TRIGGERS_ENABLED": "false"}, log_path=home / "off.log"
            ) as collector:
                off, off_status = asyncio.run(
                    open_loop(collector.url, "off", args.rate, args.batch, args.seconds)
                )
            # Synced now: the worker's stream begins at the first sync, so phase 1's events are not its.
            trigger_yaml(home / "triggers", args.wait)
            sync_triggers(settings, home / "triggers")
            with CollectorProcess(env, log_path=home / "on.log") as collector:
                on, on_status = asyncio.run(
                    open_loop(collector.url, "on", args.rate, args.batch, args.seconds)
                )
                sent_at = datetime.now(UTC)
                deadline = time.monotonic() + args.wait + 120
                while time.monotonic() < deadline:
                    statuses = timer_statuses(url)
                    if not statuses.get("pending") and datetime.now(UTC) > sent_at + timedelta(
                        seconds=args.wait
                    ):
                        break
                    time.sleep(1)
                statuses = timer_statuses(url)
            kept = receiver.stats()["kept"]
        wait = timedelta(seconds=args.wait)
        latencies, keys = [], Counter()
        for arrived, document in kept:
            for row in document["operations"]:
                keys[row["idempotency_key"]] += 1
                entry = datetime.fromisoformat(str(row["entry_at"]).replace("Z", "+00:00"))
                latencies.append(arrived - (entry + wait).timestamp())
        entries = int(args.seconds * args.rate / args.batch) * args.batch
        ack_off, ack_on = cuts(off), cuts(on)
        print(
            f"load: {args.rate:,.0f} entries/s as /v1/batch of {args.batch} for {args.seconds:g} s per phase, "
            f"wait {args.wait} s, 10% holdout"
        )
        print(
            f"ack, triggers off : p50 {ack_off['p50'] * 1000:.1f} ms, p99 {ack_off['p99'] * 1000:.1f} ms, "
            f"max {ack_off['max'] * 1000:.0f} ms, answers {dict(off_status)}"
        )
        print(
            f"ack, triggers on  : p50 {ack_on['p50'] * 1000:.1f} ms, p99 {ack_on['p99'] * 1000:.1f} ms, "
            f"max {ack_on['max'] * 1000:.0f} ms, answers {dict(on_status)}"
        )
        print(f"ack p99 on / off  : {ack_on['p99'] / ack_off['p99']:.3f}  (goal <= 1.10)")
        print(f"timers            : {statuses} of {entries:,} entries")
        if latencies:
            lat = cuts(latencies)
            print(
                f"deadline -> receiver: p50 {lat['p50']:.3f} s, p95 {lat['p95']:.3f} s (goal <= 2 s), "
                f"p99 {lat['p99']:.3f} s, max {lat['max']:.3f} s over {len(latencies):,} firings"
            )
        duplicates = sum(n - 1 for n in keys.values())
        print(f"checks            : {len(keys):,} distinct firings received, {duplicates} duplicates")
        ok = (
            not statuses.get("pending")
            and statuses.get("fired", 0) == len(keys)
            and duplicates == 0
            and statuses.get("fired", 0) + statuses.get("held_out", 0) == entries
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
