"""Setting up the warehouse and getting events in: `pulse up`, `down`, `env`, `simulate`, `ingest`,
`import-orders`, `serve`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from pulse.cli.output import _fail, _progress, console, out
from pulse.config import get_settings

commands = typer.Typer()


@commands.command()
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


@commands.command()
def down() -> None:
    """Stop the embedded PostgreSQL (no effect when PULSE_DATABASE_URL is set)."""
    from pulse import embedded

    settings = get_settings()
    stopped = not settings.database_url and embedded.stop(settings.home_dir)
    console.print("embedded PostgreSQL stopped" if stopped else "nothing to stop")


@commands.command()
def env() -> None:
    """Print the variables dbt's profiles.yml and Feast's feature_store.yaml read (`eval "$(pulse env)"`)."""
    from pulse.features.store import feast_env

    for key, value in feast_env(get_settings()).items():
        out.print(f"export {key}={value!r}", highlight=False, soft_wrap=True)


@commands.command()
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
    from pulse.cli.demo import audience_groups
    from pulse.events.campaign_sim import play_campaign

    groups, days = audience_groups(audience, settings)
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


@commands.command()
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


@commands.command("import-orders")
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


@commands.command()
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
