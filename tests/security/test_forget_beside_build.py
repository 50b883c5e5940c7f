"""A forget running beside a dbt build leaves nothing of the person (issue 13, item 9).

Without a lock, a build that read the person's events before the forget deleted them writes their rows
into the marts afterwards; the forget's own check may even pass before those rows land. Here the forget
starts while a full rebuild is under way (just after it swapped in the stitched events), and once both
have finished, no table holds the person.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg

from pulse import forget as erasure
from pulse import transform
from pulse.events.ingest import ingest_file
from pulse.events.simulator import simulate
from tests.conftest import tables_naming

SIM_END = datetime(2026, 4, 1, tzinfo=UTC)
STITCHED = "intermediate.int_events_stitched_to_customers"


def _oid(url: str) -> int | None:
    with psycopg.connect(url) as conn:
        return conn.execute("select to_regclass(%s)::oid", (STITCHED,)).fetchone()[0]


def test_forget_beside_a_build_leaves_nothing(settings, tmp_path):
    url = settings.database_url
    sim = simulate(tmp_path / "sim", customers=40, days=20, seed=5, end=SIM_END)
    ingest_file(sim.events_path, settings)
    transform.build(settings)
    with psycopg.connect(url) as conn:
        target = conn.execute(
            "select customer_id from marts.customers order by customer_id limit 1"
        ).fetchone()[0]
    assert len(tables_naming(url, target)) > 3

    before = _oid(url)
    failure: list[BaseException] = []

    def rebuild() -> None:
        try:
            transform.build(settings, full_refresh=True)
        except BaseException as error:  # noqa: BLE001 - reported below
            failure.append(error)

    builder = threading.Thread(target=rebuild)
    builder.start()
    deadline = time.monotonic() + 300
    while builder.is_alive() and _oid(url) == before and time.monotonic() < deadline:
        time.sleep(0.02)  # the rebuild has read raw.events into a new stitched table: the worst moment
    erasure.forget(customer_id=target, settings=settings)
    builder.join(600)
    assert not failure, failure

    assert tables_naming(url, target) == {}
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from marts.customers").fetchone()[0] > 0  # others rebuilt
