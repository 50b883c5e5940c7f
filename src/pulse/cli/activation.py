"""Audiences, their syncs and the report: `pulse audiences`, `sync`, `report`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from pulse.cli.output import _fail, console, out
from pulse.config import get_settings

commands = typer.Typer()


@commands.command()
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


@commands.command()
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


@commands.command()
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
