"""`pulse airflow` in a real browser: start it, log in, see the Pulse DAGs, trigger pulse_ingest from the
UI and watch the run succeed; the landed events are then in the warehouse. Headless Chromium (Debian's
`chromium` package) driven by Playwright; everything on loopback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from pulse.config import PROJECT_ROOT
from pulse.events.simulator import simulate
from pulse.local_airflow import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("airflow")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PULSE_DAGS = ["pulse_ingest", "pulse_transform", "pulse_features", "pulse_train", "pulse_score_audiences"]


def _processes_using(home: Path) -> list[int]:
    """Processes whose AIRFLOW_HOME is this test's: what `pulse airflow` started."""
    marker = f"AIRFLOW_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def pulse_airflow(settings):
    """`pulse airflow --paused` on a free port; yields (url, password); stops it and everything it started."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PULSE_HOME"] = str(settings.home_dir)
    pulse = str(Path(sys.executable).parent / "pulse")
    process = subprocess.Popen(
        [pulse, "airflow", "--port", str(port), "--paused"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    home = settings.home_dir / "airflow"
    try:
        deadline = time.monotonic() + 300
        while not any(line.startswith("login:") for line in output):
            assert process.poll() is None, "".join(output)[-3000:]
            assert time.monotonic() < deadline, "pulse airflow did not start:\n" + "".join(output)[-3000:]
            time.sleep(1)
        text = "".join(output)
        url = re.search(r"Airflow UI: (\S+)", text).group(1)
        password = re.search(r"login: admin / (\S+)", text).group(1)
        assert url == f"http://127.0.0.1:{port}"
        yield url, password
    finally:
        process.send_signal(signal.SIGTERM)  # `pulse airflow` stops Airflow's whole process group
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        leftovers = _processes_using(home)
        for pid in leftovers:  # only ours: they carry this test's AIRFLOW_HOME
            os.kill(pid, signal.SIGKILL)
    assert process.returncode == 0, "".join(output)[-3000:]
    assert leftovers == [], f"pulse airflow left processes running: {leftovers}"


def test_airflow_ui_triggers_ingest_and_it_succeeds(settings, pulse_airflow, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    sim = simulate(tmp_path / "sim", customers=20, days=3, seed=11)
    landed = settings.landing_dir / "events.jsonl"
    sim.events_path.rename(landed)
    landed_at = time.time() - 15 * 60  # before the interval a trigger now gets (the last complete 5 min)
    os.utime(landed, (landed_at, landed_at))
    url, password = pulse_airflow

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))

            page.goto(f"{url}/dags")
            for dag_id in PULSE_DAGS:
                expect(page.get_by_role("link", name=dag_id, exact=True).first).to_be_visible(timeout=90_000)

            page.goto(f"{url}/dags/pulse_ingest")
            page.get_by_role("button", name="Trigger Dag").click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text("Unpause pulse_ingest on trigger")).to_be_visible()
            # Wait for the UI's request that creates the run before leaving the page.
            with page.expect_response(
                lambda r: r.request.method == "POST" and "pulse_ingest" in r.url and "dagRuns" in r.url
            ) as created:
                dialog.get_by_role("button", name="Trigger").click()
            assert created.value.ok, (created.value.status, created.value.text())
            expect(dialog).to_be_hidden(timeout=30_000)  # it animates shut; slow on a loaded machine

            manual_run = page.get_by_role("row").filter(has_text="Manual")
            deadline = time.monotonic() + 180
            state = "(not listed yet)"
            while "Success" not in state:
                assert "Failed" not in state, state
                assert time.monotonic() < deadline, f"the triggered run did not succeed in time: {state}"
                time.sleep(3)
                page.goto(f"{url}/dags/pulse_ingest/runs")
                expect(page.get_by_text("Dag Runs").first).to_be_visible()
                if manual_run.count():
                    expect(manual_run).to_have_count(1)
                    state = manual_run.inner_text()
        finally:
            browser.close()

    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("select count(*) from raw.events").fetchone()[0] == sim.n_events
    assert not landed.exists()
