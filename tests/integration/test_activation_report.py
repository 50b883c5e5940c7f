"""The HTML report's activation section, from real sync runs to the local webhook server: delivery rate,
refused rows grouped by the destination's reason, size at the destination after each run, latest runs."""

from __future__ import annotations

import re

import pytest

from pulse.activation.delivery import RetryPolicy
from pulse.activation.engine import run_sync
from pulse.activation.syncs import SyncDefinition
from pulse.db import engine
from pulse.reporting.data import load
from pulse.reporting.html import write_report
from tests.activation_fakes import FakeVendor, set_audience


def _section(html: str) -> str:
    match = re.search(r'<section id="activation">(.*?)</section>', html, re.S)
    assert match, "no activation section"
    return match.group(1)


@pytest.fixture
def fake():
    vendor = FakeVendor("webhook").start()
    yield vendor
    vendor.stop()


def test_report_shows_delivery_rejects_and_size_at_the_destination(settings, fake):
    assert "Not available yet: activation.sync_runs has no rows yet." in _section(
        write_report(settings).read_text()
    )

    sync = SyncDefinition.model_validate(
        {
            "name": "vip_hook",
            "audience": "vip",
            "mode": "mirror",
            "destination": {"kind": "webhook", "url": fake.url + "/hook"},
            "batch_size": 4,
        }
    )
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=1)
    set_audience(settings, "vip", [f"c{i}" for i in range(10)], ["h1"])
    run_sync(sync, settings, policy=policy)
    set_audience(settings, "vip", [f"c{i}" for i in range(3, 12)], ["h1"])
    fake.bad("c11", "email address is on the suppression list")
    assert run_sync(sync, settings, policy=policy).status == "partial"

    with engine(settings).connect() as conn:
        data = load(conn)
    (delivery,) = data.sync_delivery.to_dict("records")
    # First run 10 accepted; second: 3 removes and c10 accepted, c11 refused.
    assert (delivery["sent"], delivery["accepted"], delivery["rejected"]) == (15, 14, 1)
    assert delivery["delivery_rate"] == pytest.approx(14 / 15)
    assert delivery["destination_size"] == 8 and delivery["last_status"] == "partial"
    assert list(data.sync_sizes["destination_size"]) == [10, 8]
    (reject,) = data.sync_rejects.to_dict("records")
    assert reject["rows"] == 1 and "suppression list" in reject["reason"]

    body = _section(write_report(settings).read_text())
    assert "<h2>Activation</h2>" in body and "Not available yet" not in body
    assert len(re.findall(r'src="data:image/png;base64,', body)) == 1
    assert "email address is on the suppression list" in body
    assert "0.933" in body  # the delivery rate in the table
