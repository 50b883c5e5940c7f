"""An event accepted by the collector (`pulse serve`, Redis online store) is readable through Feast's
get_online_features within 2 s: p95 over 200 events, each for its own customer."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import numpy as np

from pulse.collector.process import CollectorProcess
from pulse.features import store as feast_store
from tests.conftest import TEST_REDIS_URL
from tests.integration.test_online_stores import write_snapshots

KEY = "test-write-key"
N = 200
RATE = 40  # events per second


def track(customer: str, name: str = "Product Viewed", **properties) -> dict:
    return {
        "type": "track",
        "event": name,
        "userId": customer,
        "messageId": uuid.uuid4().hex,
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": properties,
    }


def wait_visible(store, customers: list[str], timeout: float) -> dict[str, float]:
    """Poll the online store; the monotonic time each customer's real-time row first appeared."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(customers) and time.monotonic() < deadline:
        pending = [c for c in customers if c not in seen]
        values = store.get_online_features(
            features=["customer_realtime:last_event_at"], entity_rows=[{"customer_id": c} for c in pending]
        ).to_dict()
        now = time.monotonic()
        for customer, last in zip(values["customer_id"], values["last_event_at"], strict=True):
            if last is not None:
                seen[customer] = now
        time.sleep(0.01)
    return seen


def test_collector_events_reach_the_online_store_within_two_seconds(settings, monkeypatch, tmp_path):
    monkeypatch.setenv("PULSE_REDIS_URL", TEST_REDIS_URL)
    monkeypatch.setattr(settings, "redis_url", TEST_REDIS_URL)
    write_snapshots(settings, [])
    feast_store.apply(settings)
    store = feast_store.feature_store(settings)
    run = uuid.uuid4().hex[:6]
    try:
        with CollectorProcess({"PULSE_WRITE_KEY": KEY}, log_path=tmp_path / "collector.log") as collector:
            with httpx.Client(base_url=collector.url, auth=(KEY, ""), timeout=10) as client:
                # Warm-up: the collector imports Feast and reads the registry on its first push.
                assert client.post("/v1/track", json=track(f"warm-{run}")).status_code == 200
                assert wait_visible(store, [f"warm-{run}"], timeout=60)

                customers = [f"fresh-{run}-{i:03d}" for i in range(N)]
                sent: dict[str, float] = {}
                seen: dict[str, float] = {}
                poller = threading.Thread(target=lambda: seen.update(wait_visible(store, customers, 30)))
                poller.start()
                for i, customer in enumerate(customers):
                    target = sent.get(customers[0], time.monotonic()) + i / RATE
                    time.sleep(max(0.0, target - time.monotonic()))
                    sent[customer] = time.monotonic()
                    response = client.post("/v1/track", json=track(customer, category="shoes"))
                    assert response.status_code == 200, response.text
                poller.join()
        assert len(seen) == N, f"{N - len(seen)} events never became visible"
        latency = np.array([seen[c] - sent[c] for c in customers])
        p50, p95, worst = np.percentile(latency, 50), np.percentile(latency, 95), latency.max()
        print(
            f"\nevent -> get_online_features: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        )
        assert p95 < 2.0
    finally:
        store.teardown()
