"""Running Pulse: `pulse forget`, `demo` (the whole flow on simulated data), `airflow`."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.table import Table

from pulse.cli.activation import _print_syncs, audiences, report
from pulse.cli.collect import ingest, simulate
from pulse.cli.demo import CAMPAIGN_DAYS, uplift_loop
from pulse.cli.modeling import build, features, score, train
from pulse.cli.output import _fail, console, out
from pulse.config import get_settings

commands = typer.Typer()


@commands.command()
def forget(
    customer_id: str | None = typer.Argument(None, help="The customer id to forget."),
    email: str | None = typer.Option(None, help="Forget the customer(s) with this email instead."),
    yes: bool = typer.Option(
        False, "--yes", help="Confirm forgetting every customer the email matches, when it matches several."
    ),
) -> None:
    """Delete one customer from every table, the online store, exports and landed files; verify; audit."""
    from pulse import forget as erasure

    try:
        result = erasure.forget(
            customer_id, email, get_settings(), status=console.status, confirm_multiple=yes
        )
    except erasure.AmbiguousSubjectError as error:
        console.print(f"customers with this email: {', '.join(error.customer_ids)}", highlight=False)
        _fail(str(error))
    except erasure.ForgetError as error:
        _fail(str(error))
    counts = result.identities.counts()
    console.print(
        f"{counts['customer_ids']} customer id(s), {counts['anonymous_ids']} device id(s), "
        f"{counts['email_hashes']} email hash(es)"
    )
    table = Table(title="Deleted")
    table.add_column("where")
    table.add_column("rows", justify="right")
    for where, rows in sorted({**result.deleted_rows, **result.files}.items()):
        table.add_row(where, f"{rows:,}")
    table.add_row("online store entries", f"{result.online_keys:,}")
    console.print(table)
    console.print(
        f"[green]verified[/]: nothing of theirs is left (audit.forget_requests: {result.request_id})"
    )


@commands.command()
def demo(
    customers: int = typer.Option(2000, help="Simulated customers."),
    days: int = typer.Option(60, help="Days of simulated history."),
    seed: int = typer.Option(7, help="Random seed."),
) -> None:
    """The whole flow on simulated data: simulate, ingest, build, features, train, score, audiences, the
    uplift loop (test campaign, outcomes, uplift model, persuadable audience; cli/demo.py), syncs, report.

    Empties Pulse's own tables (raw, ml, audiences) first so the demo starts clean.
    """
    from pulse import db, pipeline
    from pulse.events.simulator import default_end

    settings = get_settings()
    console.rule("[bold]Pulse demo")
    db.warehouse_url(settings)
    db.create_schemas(settings)
    pipeline.reset_pulse_tables(settings)
    sim_dir = settings.home_dir / "simulation"
    # History ends before today by the test campaign's window and the day after it: ingest refuses events
    # from the future, and the campaign's orders come after the history.
    end = default_end() - timedelta(days=CAMPAIGN_DAYS)
    simulate(
        customers=customers, days=days, seed=seed, end=end, out_dir=sim_dir, label_days=None, campaign=None
    )
    ingest(str(sim_dir / "events.jsonl"))
    build(full_refresh=False)
    features()
    train(truth=sim_dir / "truth.csv", task=None)
    score()
    audiences(dry_run=False, export=None)
    uplift_loop(settings, sim_dir)
    audiences(dry_run=False, export=settings.home_dir / "exports")  # persuadable_buyers from new scores
    _demo_syncs(settings)
    console.rule("[bold]Results")
    report(html=True)


def _demo_syncs(settings) -> None:
    """Run the file-drop syncs (the shipped campaigns/syncs/*_file.yml) from scratch, so the run log and
    PULSE_HOME/exports/syncs/ show what activation does; syncs to other destinations are left alone."""
    from pulse.activation.engine import SyncError, run_syncs
    from pulse.activation.syncs import SyncConfigError

    try:
        with console.status("syncing audiences to files"):
            results = run_syncs(settings=settings, kinds=frozenset({"file_drop"}), fresh=True)
    except (SyncConfigError, SyncError) as error:
        _fail(str(error))
    _print_syncs(results, dry_run=False)
    console.print(
        f"sync files: {settings.home_dir / 'exports' / 'syncs'}; run log: activation.sync_runs, activation.sync_records"
    )


@commands.command()
def airflow(
    port: int = typer.Option(8080, help="Port of the Airflow UI and API."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every one)."),
    paused: bool = typer.Option(
        False, "--paused", help="Create the DAGs paused (default: unpaused, so the schedules run)."
    ),
) -> None:
    """Start Airflow (standalone) with Pulse's DAGs and plugins; print the UI address and login. Ctrl-C stops it."""
    import signal

    from pulse.local_airflow import AIRFLOW_USER, start_airflow

    settings = get_settings()
    with console.status("starting Airflow (first start migrates its database: about a minute)"):
        try:
            running = start_airflow(settings, port=port, host=host, paused=paused)
        except (RuntimeError, TimeoutError) as error:
            _fail(str(error))

    def stop_on_sigterm(*_) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    console.print(f"[green]Airflow is up[/] (log: {running.log_path})")
    out.print(f"Airflow UI: {running.url}", highlight=False)
    out.print(f"login: {AIRFLOW_USER} / {running.password()}", highlight=False)
    out.print(f"(password file: {running.password_file})", highlight=False)
    console.print(
        "Pulse DAGs: pulse_ingest -> pulse_transform -> pulse_features -> pulse_score_audiences; pulse_train weekly"
    )
    console.print(f"Drop event files into {settings.landing_dir} for pulse_ingest. Ctrl-C stops Airflow.")
    try:
        running.process.wait()
        console.print(
            f"[red]airflow standalone exited ({running.process.returncode}); see {running.log_path}"
        )
    except KeyboardInterrupt:
        console.print("stopping Airflow")
    finally:
        running.stop()
