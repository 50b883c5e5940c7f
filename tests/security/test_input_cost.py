"""#13 item 3: what a hostile request can cost. Deep JSON and oversized batches are a 400, a request
without a key costs no more than its headers and a bounded prefix, the PII scan is linear, and /health
answers at once while clients post maximum-size batches."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest

from pulse.collector.process import CollectorProcess
from pulse.events.ingest import parse_payload
from pulse.events.pii import maybe_pii, redact_text

KEY = "security-write-key"


@pytest.fixture
def collector(settings, tmp_path):
    with CollectorProcess({"PULSE_WRITE_KEY": KEY}, log_path=tmp_path / "collector.log") as process:
        yield process


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def test_deep_json_and_huge_batches_are_refused_with_400(collector):
    for levels in (100, 1_000, 100_000):
        body = '{"type":"track","event":"e","userId":"u1","messageId":"m1","properties":' + deep(levels) + "}"
        answer = httpx.post(collector.url + "/v1/track", content=body, auth=(KEY, ""), timeout=60)
        assert answer.status_code == 400, (levels, answer.text[:200])
        assert answer.json()["code"] == "too_deep"
        # Without a key it is a 401, whatever the body holds.
        anonymous = httpx.post(collector.url + "/v1/track", content=body, timeout=60)
        assert anonymous.status_code == 401
    tiny = [{"type": "track", "event": "e", "userId": "u", "messageId": str(i)} for i in range(2_001)]
    answer = httpx.post(collector.url + "/v1/batch", json={"batch": tiny}, auth=(KEY, ""), timeout=60)
    assert answer.status_code == 400 and answer.json()["code"] == "too_many_events"
    assert httpx.get(collector.url + "/health", timeout=30).status_code == 200


def test_a_request_without_a_key_is_refused_before_its_body_is_read(collector):
    """Headers announcing 4 MB, then 100 KB without a writeKey: the 401 comes without the rest."""
    host, port = collector.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST /v1/batch HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {4 * 1024 * 1024}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"batch":[' + b" " * 100_000)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401")


def pii_dense_event(size: int = 32 * 1024) -> tuple[dict, bytes]:
    """Phone numbers, PII key words and no `@`: the shape that made the old pre-check quadratic."""
    parts, i = [], 0
    while True:
        parts.append(f"phone +44 20 7946 {i % 10_000:04d} mobile +1 415 555 {i % 10_000:04d} ")
        event = {
            "type": "track",
            "event": "Support Ticket",
            "userId": "u1",
            "messageId": "dense",
            "properties": {"notes": "".join(parts)},
        }
        raw = json.dumps(event).encode()
        if len(raw) > size - 100:
            return event, raw
        i += 1


def best_cpu_seconds(work, runs: int = 5) -> float:
    """CPU time of this thread, best of `runs`: the machine is shared, and wall time would measure the
    neighbours' load as well."""
    best = float("inf")
    for _ in range(runs):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return best


def test_the_pii_scrub_grows_linearly_on_dense_events():
    """The old scan was quadratic: 33 ms at 8 KB and far more at 32 KB. Judged by how the cost grows from
    8 KB to 32 KB in the same minutes (linear: 4x, quadratic: 16x), so a slow or busy machine cannot fail it,
    with an absolute ceiling far above the ~5 ms a 32 KB event takes, as a guard against a catastrophe."""
    received = datetime.now(UTC)

    def costs(size: int) -> tuple[float, float]:
        event, raw = pii_dense_event(size)

        def accept() -> tuple:  # the collector's way: pre-check, then the contract's scrub
            assert maybe_pii(raw)
            return parse_payload(event, "test", 1, received, raw=raw, scrub_pii=True)

        def reject() -> str:  # a refused event's payload is redacted before it is stored
            return redact_text(raw.decode())

        row, redacted = accept(), reject()
        for scrubbed in (row[10], redacted):
            assert "+44 20 7946" not in scrubbed and "+1 415 555" not in scrubbed
        return best_cpu_seconds(accept), best_cpu_seconds(reject)

    small, large = costs(8 * 1024), costs(32 * 1024)
    for name, s, big in zip(("accept", "reject"), small, large, strict=True):
        assert big / s < 7, f"{name}: {s * 1000:.1f} ms at 8 KB, {big * 1000:.1f} ms at 32 KB"
        assert big < 0.050, f"{name}: {big * 1000:.1f} ms at 32 KB"


def max_size_batch() -> bytes:
    """Just under Segment's 500 KB batch limit, of realistic 600-byte events."""
    event = (
        '{"type":"track","event":"Product Viewed","messageId":"%s","userId":"c%d","properties":'
        '{"product_id":"p-%d","category":"shoes","price":59.9,"padding":"%s"},"context":{"page":'
        '{"url":"https://shop.example.com/p/%d"}}}'
    )
    events, size, i = [], 0, 0
    while True:
        one = event % (uuid.uuid4().hex, i, i, "x" * 400, i)
        if size + len(one) > 495 * 1024:
            return ('{"batch":[' + ",".join(events) + "]}").encode()
        events.append(one)
        size += len(one) + 1
        i += 1


def health_latencies(url: str, polls: int = 200) -> list[float]:
    with httpx.Client(timeout=30) as http:
        latencies = []
        for _ in range(polls):
            started = time.perf_counter()
            assert http.get(url + "/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    return latencies


def p99_ms(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 99)) * 1000


# 20 clients posting the same maximum-size batches in a loop, in their own process (so their threads do
# not compete with the /health poller for this process's GIL) until its stdin closes; then prints the
# answers' statuses.
LOAD = """
import collections, sys, threading, httpx
url, key, path = sys.argv[1], sys.argv[2], sys.argv[3]
body = open(path, "rb").read()
stop, statuses = threading.Event(), collections.Counter()
def client():
    with httpx.Client(auth=(key, ""), timeout=60) as http:
        while not stop.is_set():
            statuses[http.post(url + "/v1/batch", content=body, headers={"Content-Type": "application/json"}).status_code] += 1
threads = [threading.Thread(target=client) for _ in range(20)]
[t.start() for t in threads]
sys.stdin.read(); stop.set(); [t.join() for t in threads]
print(dict(statuses))
"""


def test_health_answers_at_once_while_20_clients_post_maximum_size_batches(collector, tmp_path):
    """/health p99 under the load stays within 100 ms of its p99 without load, measured in the same run
    (on a quiet machine the latter is a few milliseconds; on a shared one it is the neighbours' share)."""
    idle = p99_ms(health_latencies(collector.url))
    batch = tmp_path / "batch.json"
    batch.write_bytes(max_size_batch())
    load = subprocess.Popen(
        [sys.executable, "-c", LOAD, collector.url, KEY, str(batch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)  # every client has a batch in flight
        loaded = p99_ms(health_latencies(collector.url))
    finally:
        statuses = load.communicate("", timeout=120)[0]
    assert statuses.strip().startswith("{200:"), statuses
    assert loaded < idle + 100, f"/health p99 {loaded:.0f} ms under load, {idle:.0f} ms without"
