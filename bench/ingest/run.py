"""Benchmark: `pulse ingest` of N events against a raw COPY of the same rows, in the same run.

    .venv/bin/python bench/ingest/run.py [--events 1000000] [--url postgresql://...]

1. Simulates events with Pulse's simulator (cached in the temp folder, so reruns skip this).
2. Creates a scratch database, runs `ingest_path` (what `pulse ingest` calls: parse, validate against the
   contract, hash PII, COPY, reject bad lines) on the JSONL file and times it.
3. Dumps the rows it wrote and COPYs exactly those rows into an identical table (`create table ... (like
   raw.events including all)`: same columns, defaults, primary key and indexes), timed the same way.
4. Repeats 2-3 `--rounds` times (pulse, then COPY, alternating, so load from other processes on a shared
   machine falls on both), prints each round and the overall rates and ratio `pulse / COPY` (goal >= 0.95),
   then drops the scratch database.

The server is `--url`, else PULSE_DATABASE_URL, else Pulse's embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from pulse import db
from pulse.config import Settings
from pulse.events.contract import EVENT_COLUMNS
from pulse.events.ingest import ingest_path
from pulse.events.load import ensure_raw_tables
from pulse.events.simulator import simulate

EVENTS_PER_CUSTOMER = 150  # about what the simulator makes per customer over 60 days


def events_file(n: int) -> Path:
    cache = Path(tempfile.gettempdir()) / "pulse-bench"
    cache.mkdir(exist_ok=True)
    target = cache / f"events-{n}.jsonl"
    if target.exists():
        return target
    sim = cache / f"sim-{n}"
    customers = n // EVENTS_PER_CUSTOMER + 100
    while True:
        print(f"simulating {customers:,} customers for {n:,} events ...", flush=True)
        result = simulate(sim, customers=customers, days=60, seed=11)
        if result.n_events >= n:
            break
        customers = int(customers * n / result.n_events * 1.05) + 10
    partial = target.with_suffix(".partial")
    with result.events_path.open("rb") as src, partial.open("wb") as dst:
        dst.writelines(islice(src, n))
    partial.rename(target)
    return target


def admin_url(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--url", default=os.environ.get("PULSE_DATABASE_URL"))
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="alternate pulse and COPY this many times (shared machines are noisy)",
    )
    args = parser.parse_args()

    server = args.url or db.warehouse_url(Settings(database_url=None))
    path = events_file(args.events)
    size_mb = path.stat().st_size / 1e6
    name = f"pulse_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = admin_url(server, name)
    try:
        settings = Settings(database_url=url, home=Path(tempfile.mkdtemp(prefix="pulse-bench-home-")))
        ensure_raw_tables(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create schema bench")
            conn.execute("create table bench.events_copy (like raw.events including all)")
            conn.execute("checkpoint")

        print(f"{args.events:,} events, {size_mb:,.0f} MB: {path}", flush=True)
        dump = path.with_suffix(".copy.tsv")
        columns = ", ".join(EVENT_COLUMNS)
        pulse_total = copy_total = 0.0
        for round_no in range(1, args.rounds + 1):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("truncate raw.events, raw.events_rejected, bench.events_copy")
                conn.execute("checkpoint")
            started = time.perf_counter()
            result = ingest_path(path, settings)
            pulse_s = time.perf_counter() - started
            assert result.inserted + result.rejected == args.events, result

            if round_no == 1:
                with psycopg.connect(url) as conn, dump.open("wb") as out:
                    with conn.cursor().copy(f"copy raw.events ({columns}) to stdout") as copy:
                        for block in copy:
                            out.write(block)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("checkpoint")
            started = time.perf_counter()
            with psycopg.connect(url) as conn, dump.open("rb") as src:
                with conn.cursor().copy(f"copy bench.events_copy ({columns}) from stdin") as copy:
                    while block := src.read(1 << 20):
                        copy.write(block)
            copy_s = time.perf_counter() - started
            with psycopg.connect(url) as conn:
                copied = conn.execute("select count(*) from bench.events_copy").fetchone()[0]
            assert copied == result.inserted, (copied, result.inserted)
            pulse_total += pulse_s
            copy_total += copy_s
            print(
                f"round {round_no}: pulse ingest {result.inserted:,} rows in {pulse_s:.2f} s "
                f"({result.inserted / pulse_s:,.0f}/s), raw COPY {copied:,} rows in {copy_s:.2f} s "
                f"({copied / copy_s:,.0f}/s), ratio {copy_s / pulse_s:.2f}",
                flush=True,
            )
        dump.unlink()
        n = result.inserted * args.rounds
        pulse_rate, copy_rate = n / pulse_total, n / copy_total
        print(f"pulse ingest : {pulse_rate:>9,.0f} events/s ({args.rounds} round(s))")
        print(f"raw COPY     : {copy_rate:>9,.0f} rows/s, same rows, identical table")
        print(f"ratio pulse/COPY = {pulse_rate / copy_rate:.2f} (goal >= 0.95)")
    finally:
        with psycopg.connect(admin_url(server, "postgres"), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
