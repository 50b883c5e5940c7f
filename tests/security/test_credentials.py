"""#13 item 1: the scoring API needs the read key; empty keys never authenticate; `pulse serve` refuses
to listen beyond loopback without real keys."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from pulse.collector.process import CollectorProcess, free_port

WRITE_KEY = "security-write-key"
READ_KEY = "security-read-key"


@pytest.fixture
def collector(settings, tmp_path):
    env = {"PULSE_WRITE_KEY": WRITE_KEY, "PULSE_READ_KEY": READ_KEY}
    with CollectorProcess(env, log_path=tmp_path / "collector.log") as process:
        yield process


def test_scores_need_the_read_key_and_send_no_cors(collector):
    url = collector.url + "/v1/scores/c000001"
    browser = {"Origin": "https://evil.example"}
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {WRITE_KEY}"},
    ):
        response = httpx.get(url, headers={**browser, **headers}, timeout=30)
        assert response.status_code == 401, headers
        assert response.json()["code"] == "unauthorized"
        assert "access-control-allow-origin" not in response.headers
    preflight = httpx.options(url, headers={**browser, "Access-Control-Request-Method": "GET"}, timeout=30)
    assert "access-control-allow-origin" not in preflight.headers
    # With the key the request reaches the scorer (no champion in this empty warehouse: 404).
    authorised = httpx.get(url, headers={"Authorization": f"Bearer {READ_KEY}"}, timeout=30)
    assert authorised.status_code == 404 and authorised.json()["code"] == "no_model"
    # Browsers still send events from any origin.
    event = {"type": "track", "event": "Viewed", "userId": "u1", "messageId": "m1"}
    sent = httpx.post(
        collector.url + "/v1/track", json=event, auth=(WRITE_KEY, ""), headers=browser, timeout=30
    )
    assert sent.status_code == 200 and sent.headers["access-control-allow-origin"] == "*"


def test_an_empty_write_key_authenticates_nobody(settings, tmp_path):
    event = {"type": "track", "event": "Viewed", "userId": "u1", "messageId": "m1"}
    with CollectorProcess({"PULSE_WRITE_KEY": ""}, log_path=tmp_path / "collector.log") as process:
        assert httpx.post(process.url + "/v1/track", json=event, auth=("", ""), timeout=30).status_code == 401
        in_body = {**event, "writeKey": ""}
        assert httpx.post(process.url + "/v1/track", json=in_body, timeout=30).status_code == 401


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"PULSE_READ_KEY": READ_KEY}, "development default"),
        ({"PULSE_WRITE_KEY": "", "PULSE_READ_KEY": READ_KEY}, "PULSE_WRITE_KEY is empty"),
        ({"PULSE_WRITE_KEY": WRITE_KEY, "PULSE_READ_KEY": ""}, "PULSE_READ_KEY is not set"),
    ],
)
def test_serve_on_all_interfaces_without_real_keys_refuses_to_start(settings, env, reason):
    import os

    base = {k: v for k, v in os.environ.items() if k not in ("PULSE_WRITE_KEY", "PULSE_READ_KEY")}
    command = [sys.executable, "-m", "pulse.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port())]
    try:
        done = subprocess.run(command, env={**base, **env}, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("pulse serve started on 0.0.0.0 without real keys")
    assert done.returncode != 0
    output = " ".join((done.stdout + done.stderr).split())
    assert "refusing to serve on 0.0.0.0" in output and reason in output
