"""Building the warehouse, features and models: `pulse build`, `features`, `train`, `import-campaign`,
`train-uplift`, `score`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from pulse.cli.output import _fail, _progress, console
from pulse.config import get_settings

commands = typer.Typer()


@commands.command()
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


@commands.command()
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


@commands.command()
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


@commands.command("import-campaign")
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


@commands.command("train-uplift")
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


@commands.command()
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
