"""What several benchmarks share: a throw-away database, the simulated history loaded as a daily pipeline
would have loaded it, its split at the last day, and a child process timed with its peak memory.

Benchmarks import it after putting `bench/` on `sys.path` (they run as plain scripts).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from sqlalchemy.engine import make_url

from pulse import embedded
from pulse.config import PROJECT_ROOT

PULSE = str(Path(sys.executable).parent / "pulse")  # the CLI a user runs, from this venv


def admin(url: str) -> psycopg.Connection:
    """An autocommit connection to the server's `postgres` database."""
    return psycopg.connect(
        make_url(url).set(database="postgres").render_as_string(hide_password=False), autocommit=True
    )


@contextlib.contextmanager
def fresh_database(prefix: str, keep: bool = False) -> Iterator[str]:
    """A new database on the server of PULSE_DATABASE_URL (or the embedded one), dropped afterwards."""
    server = os.environ.get("PULSE_DATABASE_URL") or embedded.start(PROJECT_ROOT / ".pulse")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin(server) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            with admin(server) as conn:
                conn.execute(f'drop database if exists "{name}" with (force)')


def split_at_last_day(events_path: Path, share: float, base: Path, increment: Path) -> tuple[int, int]:
    """Write the events before the last simulated day to `base` and the first `share` of the base's
    count from that day on (in time order) to `increment` (`share` 1 or more: the whole last day)."""
    with events_path.open() as source:
        # ISO timestamps in UTC ("...Z") compare as strings.
        stamps = sorted(json.loads(line)["timestamp"] for line in source)
    last_day = stamps[-1][:10] + "T00:00:00"
    n_base = sum(stamp < last_day for stamp in stamps)
    wanted = stamps[n_base : n_base + max(1, round(n_base * share))]
    until = wanted[-1]
    del stamps
    n_increment = 0
    with events_path.open() as source, base.open("w") as old, increment.open("w") as new:
        for line in source:
            stamp = json.loads(line)["timestamp"]
            if stamp < last_day:
                old.write(line)
            elif stamp <= until:
                new.write(line)
                n_increment += 1
    return n_base, n_increment


def backdate_loads(url: str) -> None:
    """Set the history's `loaded_at` to the morning after each event's day, as a daily pipeline would
    have loaded it (loaded in one go, every event would carry the same `loaded_at`, and the `lookback`
    var, which re-reads the last hours of loads, would re-read the whole history), then analyze."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "update raw.events set loaded_at = date_trunc('day', event_at) + interval '1 day 1 hour'"
        )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze raw.events")


def settle(url: str) -> None:
    """What the server does between two daily runs: vacuum, analyze and a checkpoint."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze")
        conn.execute("checkpoint")


@dataclass
class Measured:
    """One timed child process.

    `client_peak_mb`: the highest summed resident set size (RSS) of the child and all its descendants,
    sampled every `interval` seconds. `server_peak_mb`: the highest summed private memory (USS: pages no
    other process shares, so shared_buffers is left out) of the PostgreSQL backends connected to the
    benchmark's database (parallel workers included), sampled at the same moments. Sampling can miss a
    peak shorter than the interval. `load`: the machine's mean 1-minute load average over the samples
    (on a shared machine, how many others wanted the cores meanwhile). `client_cpu_s`: user + system
    CPU seconds of the child and the descendants it waited for (getrusage); `server_cpu_s`: the same of
    the backends seen in the samples, at their last sample. On a machine shared with other work, CPU
    seconds grow with the work done, where wall time also grows with the others' load.
    """

    seconds: float
    client_peak_mb: float
    server_peak_mb: float
    load: float
    client_cpu_s: float
    server_cpu_s: float
    output: str


def _tree_rss(process: psutil.Process) -> int:
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.Error:  # the child (or one of its own) exited while being listed
        return 0
    total = 0
    for p in family:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _backends(monitor: psycopg.Connection, database: str) -> list[int]:
    return [
        row[0]
        for row in monitor.execute(
            "select pid from pg_stat_activity where datname = %s and pid <> pg_backend_pid()", (database,)
        )
    ]


def _backends_uss(pids: list[int], cpu: dict[int, float]) -> int:
    """Summed private memory of `pids`; records each one's CPU seconds so far in `cpu`."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            total += process.memory_full_info().uss
            times = process.cpu_times()
            cpu[pid] = times.user + times.system
    return total


def measure(
    command: Sequence[str], url: str, env: dict[str, str] | None = None, interval: float = 0.25
) -> Measured:
    """Run `command` (from the repository root), timing it and sampling its memory and the server's.

    Fails with the command's output when it fails. Backend memory is read only when the server runs
    on this machine (psutil sees its processes).
    """
    database = make_url(url).database
    peaks = {"client": 0, "server": 0}
    loads: list[float] = []
    backend_cpu: dict[int, float] = {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(
        list(command),
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process = psutil.Process(child.pid)
    done = threading.Event()

    def sample() -> None:
        with admin(url) as monitor:
            while not done.is_set():
                peaks["client"] = max(peaks["client"], _tree_rss(process))
                backends = _backends(monitor, database)
                peaks["server"] = max(peaks["server"], _backends_uss(backends, backend_cpu))
                loads.append(os.getloadavg()[0])
                done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = child.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n{output[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load = sum(loads) / len(loads) if loads else os.getloadavg()[0]
    return Measured(
        seconds,
        peaks["client"] / 2**20,
        peaks["server"] / 2**20,
        load,
        client_cpu,
        sum(backend_cpu.values()),
        output,
    )


def pulse(*args: str) -> list[str]:
    """The `pulse` CLI command line for `args`."""
    return [PULSE, *args]
