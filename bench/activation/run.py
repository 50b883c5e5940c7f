"""Benchmark: a mirror sync of a 1,000,000-member audience, then 1% churn, to a local webhook receiver.

    .venv/bin/python bench/activation/run.py [--members 1000000] [--churn 0.01] [--batch 10000]
                                             [--concurrency 2]

In a scratch database: `audiences.audience_members` holds `--members` treatment members and a 10%
holdout (with `audience_inputs.email_sha256`), and a webhook sync (mirror, 10,000-row batches, HMAC
signed) pushes it to `bench/receiver.py` on loopback (its own process; decodes every body's JSON).

1. First run: every member is an add. Plan time (the diff against an empty state), delivery time and
   delivered rows/s (plan streamed from the warehouse, rendered, signed, posted, each batch
   checkpointed into sync_records and sync_state).
2. Baseline, same run: the same rows rendered into the same request bodies beforehand, posted by a bare
   httpx client with the same concurrency: rows/s. Ratio = sync rows/s / bare rows/s.
3. Churn: `--churn` of the members leave and as many new ones enter; the second run's plan time is the
   diff of 1M members against the stored state (goal < 10 s), then its delivery.
Checks: the receiver got every row of both runs and no holdout member; the run log adds up.
Goals (issue #16): diff of 1M members < 10 s; delivery ratio >= 0.8.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from receiver import Receiver  # noqa: E402
from scratch import scratch_database  # noqa: E402

from pulse import db  # noqa: E402
from pulse.activation.destinations.base import Record  # noqa: E402
from pulse.activation.destinations.webhook import WebhookDestination  # noqa: E402
from pulse.activation.engine import run_sync  # noqa: E402
from pulse.activation.syncs import SyncDefinition  # noqa: E402
from pulse.config import Settings  # noqa: E402

SECRET_ENV = "PULSE_BENCH_WEBHOOK_SECRET"

AUDIENCE_SQL = """
create table audiences.audience_members (
    audience_name text not null, customer_id text not null, "group" text not null,
    score double precision, member_rank bigint, as_of timestamptz, recommended_category text,
    primary key (audience_name, customer_id));
create table audiences.audience_inputs (customer_id text primary key, email_sha256 text);
insert into audiences.audience_members
select 'bench', 'c' || lpad(i::text, 8, '0'), case when i %% 10 = 0 then 'holdout' else 'treatment' end,
       1.0 / i, i, now(), null
from generate_series(1, %(total)s) i;
insert into audiences.audience_inputs
select customer_id, encode(sha256(convert_to(customer_id || '@example.com', 'UTF8')), 'hex')
from audiences.audience_members;
analyze audiences.audience_members; analyze audiences.audience_inputs;
"""

# Churn: the first `n` treatment members (by rank) leave, `n` new customers enter.
CHURN_SQL = """
delete from audiences.audience_members where customer_id in (
    select customer_id from audiences.audience_members where "group" = 'treatment'
    order by member_rank limit %(n)s);
insert into audiences.audience_members
select 'bench', 'n' || lpad(i::text, 8, '0'), 'treatment', 0.5, %(total)s + i, now(), null
from generate_series(1, %(n)s) i;
insert into audiences.audience_inputs
select 'n' || lpad(i::text, 8, '0'), encode(sha256(convert_to('n' || i || '@example.com', 'UTF8')), 'hex')
from generate_series(1, %(n)s) i;
analyze audiences.audience_members;
"""


def run_script(conn, script: str, **params) -> None:
    for statement in filter(str.strip, script.split(";")):
        conn.execute(statement, {k: v for k, v in params.items() if f"%({k})s" in statement})


def pre_rendered(url: str, destination: WebhookDestination, batch: int) -> list[tuple[bytes, dict, int]]:
    """The first run's rows as the sync renders them, one body per batch, with the headers it sends."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select m.customer_id, i.email_sha256, m.score from audiences.audience_members m "
            "join audiences.audience_inputs i using (customer_id) where m.\"group\" = 'treatment' "
            "order by m.customer_id"
        ).fetchall()
    bodies = []
    for start in range(0, len(rows), batch):
        records = [
            Record(
                hashlib.md5(f"bench|{c}|add|1".encode()).hexdigest(),
                c,
                "add",
                {"email_sha256": e, "score": s},
            )
            for c, e, s in rows[start : start + batch]
        ]
        key = hashlib.sha256("\n".join(r.key for r in records).encode()).hexdigest()[:32]
        body = destination.render(records, key)
        bodies.append((body, destination.request_headers(body, key), len(records)))
    return bodies


def bare_post(endpoint: str, bodies: list[tuple[bytes, dict, int]], concurrency: int) -> float:
    """Seconds for a bare httpx client to post every body, `concurrency` in flight, each answer checked."""
    client = httpx.Client(
        timeout=60, limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    )

    def post(item: tuple[bytes, dict, int]) -> None:
        body, headers, _ = item
        client.post(endpoint, content=body, headers=headers).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, bodies))
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=1_000_000, help="treatment members")
    parser.add_argument("--churn", type=float, default=0.01, help="share of members replaced before run 2")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--url", default=os.environ.get("PULSE_DATABASE_URL"))
    args = parser.parse_args()

    os.environ[SECRET_ENV] = uuid.uuid4().hex
    with scratch_database(args.url) as url:
        settings = Settings(database_url=url, home=Path(tempfile.mkdtemp(prefix="pulse-bench-activation-")))
        db.create_schemas(settings)
        total = args.members * 10 // 9  # every tenth customer is in the holdout
        with psycopg.connect(url) as conn:
            run_script(conn, AUDIENCE_SQL, total=total)
            treatment = conn.execute(
                "select count(*) from audiences.audience_members where \"group\" = 'treatment'"
            ).fetchone()[0]
        with Receiver() as receiver:
            sync = SyncDefinition.model_validate(
                {
                    "name": "bench_hook",
                    "audience": "bench",
                    "mode": "mirror",
                    "destination": {
                        "kind": "webhook",
                        "url": receiver.url + "/hook",
                        "signing_secret": {"env": SECRET_ENV},
                    },
                    "fields": {"email_sha256": "email_sha256", "score": "score"},
                    "batch_size": args.batch,
                    "concurrency": args.concurrency,
                }
            )
            destination = WebhookDestination(sync.options, concurrency=args.concurrency)
            bodies = pre_rendered(url, destination, args.batch)
            destination.close()

            bare_seconds = bare_post(receiver.url + "/hook", bodies, args.concurrency)
            bare_rows = sum(n for _, _, n in bodies)
            assert receiver.stats()["rows"] == bare_rows == treatment
            receiver.reset()
            del bodies

            first = run_sync(sync, settings)
            got_first = receiver.stats()["rows"]
            receiver.reset()

            churned = int(treatment * args.churn)
            with psycopg.connect(url) as conn:
                run_script(conn, CHURN_SQL, n=churned, total=total)
            second = run_sync(sync, settings)
            got_second = receiver.stats()["rows"]

        with psycopg.connect(url) as conn:
            holdout_sent = conn.execute(
                "select count(*) from activation.sync_records r join audiences.audience_members m "
                "using (customer_id) where m.\"group\" = 'holdout'"
            ).fetchone()[0]
            unbalanced = conn.execute(
                "select count(*) from activation.sync_runs where planned <> accepted + rejected "
                "+ skipped_consent + skipped_other"
            ).fetchone()[0]

        first_delivery = first.duration_seconds - first.plan_seconds
        second_delivery = second.duration_seconds - second.plan_seconds
        sync_rate = first.counts.accepted / first_delivery
        bare_rate = bare_rows / bare_seconds
        print(
            f"audience: {treatment:,} treatment members (+{total - treatment:,} holdout), batches of "
            f"{args.batch:,}, concurrency {args.concurrency}"
        )
        print(
            f"run 1 (all adds)   : plan {first.plan_seconds:.2f} s, delivery {first_delivery:.2f} s, "
            f"{sync_rate:,.0f} rows/s, {first.status}, receiver got {got_first:,} rows"
        )
        print(
            f"bare httpx client  : {bare_seconds:.2f} s, {bare_rate:,.0f} rows/s (same bodies, pre-rendered)"
        )
        print(f"delivery ratio     : {sync_rate / bare_rate:.3f}  (goal >= 0.8)")
        print(
            f"run 2 ({args.churn:.0%} churn)  : plan (diff of {treatment:,} members) {second.plan_seconds:.2f} s "
            f"(goal < 10 s); {second.counts.adds:,} adds + {second.counts.removes:,} removes delivered in "
            f"{second_delivery:.2f} s, {second.status}, receiver got {got_second:,} rows"
        )
        print(
            f"checks             : holdout rows sent {holdout_sent}, runs whose log does not add up {unbalanced}"
        )
        ok = (
            got_first == first.counts.accepted == treatment
            and got_second == second.counts.accepted == 2 * churned
            and holdout_sent == 0
            and unbalanced == 0
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
