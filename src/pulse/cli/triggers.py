"""`pulse triggers`: real-time triggered campaigns (run, list, sync, pause, resume, readout)."""

from __future__ import annotations

import typer
from rich.table import Table

from pulse.cli.output import _fail, console, out
from pulse.config import get_settings

triggers_app = typer.Typer(
    help="Real-time triggered campaigns (campaigns/triggers/*.yml).", no_args_is_help=True
)


@triggers_app.command("run")
def triggers_run(
    consumer: str = typer.Option("worker", help="Stream position name (one evaluator per name at a time)."),
    dispatch: bool = typer.Option(True, help="Also fire due timers (--no-dispatch: evaluation only)."),
    nice: int | None = typer.Option(
        None, min=0, max=19, help="CPU priority below the collector's (default PULSE_TRIGGERS_NICE, 10)."
    ),
) -> None:
    """The trigger worker: evaluate the events the collector commits and fire due timers, until stopped.
    `pulse serve` starts one itself unless PULSE_TRIGGERS_ENABLED=false."""
    import logging
    import signal

    from pulse.triggers.stream import StreamNotReady
    from pulse.triggers.worker import TriggerWorker

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import os

    settings = get_settings()
    nice = settings.triggers_nice if nice is None else nice
    if nice:
        os.nice(nice)  # requests come first
    worker = TriggerWorker(settings, consumer=consumer, dispatch=dispatch)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    console.print(
        f"trigger worker ({consumer}): evaluating committed events{', firing due timers' if dispatch else ''}"
    )
    try:
        worker.run()
    except StreamNotReady as error:
        _fail(str(error))


@triggers_app.command("list")
def triggers_list() -> None:
    """Each trigger's state and its timers by status (activation.trigger_definitions / trigger_timers)."""
    from pulse.triggers.state import list_triggers

    table = Table(title="Triggers")
    columns = ("trigger", "status", "entry", "wait", "holdout %", "pending", "fired", "held out")
    for column in (*columns, "cancelled", "suppressed", "failed", "last fired"):
        table.add_column(column, justify="left" if column in ("trigger", "status", "entry") else "right")
    for t in list_triggers(get_settings()):
        table.add_row(
            t.name,
            t.status,
            t.entry_event,
            f"{t.wait_seconds:,} s" if t.wait_seconds else "-",
            str(t.holdout_pct),
            *(f"{n:,}" for n in (t.pending, t.fired, t.held_out, t.cancelled, t.suppressed, t.failed)),
            f"{t.last_fired_at:%Y-%m-%d %H:%M:%S}" if t.last_fired_at else "-",
        )
    out.print(table)


@triggers_app.command("sync")
def triggers_sync() -> None:
    """Validate campaigns/triggers/*.yml and make activation.trigger_definitions match (states kept)."""
    from pulse.triggers.definitions import TriggerConfigError
    from pulse.triggers.state import sync_triggers

    try:
        definitions = sync_triggers(get_settings())
    except TriggerConfigError as error:
        _fail(str(error))
    console.print(f"synced {len(definitions)} trigger(s): {', '.join(d.name for d in definitions) or '-'}")


def _set_trigger_status(name: str, status: str) -> None:
    from pulse.triggers.state import UnknownTrigger, set_status

    try:
        set_status(get_settings(), name, status)
    except UnknownTrigger as error:
        _fail(str(error))
    console.print(f"{name}: {status} (the trigger worker sees it within seconds)")


@triggers_app.command("pause")
def triggers_pause(name: str) -> None:
    """Stop a trigger: no new entries, and its due timers are recorded as suppressed, not sent."""
    _set_trigger_status(name, "paused")


@triggers_app.command("resume")
def triggers_resume(name: str) -> None:
    """Start a paused trigger again."""
    _set_trigger_status(name, "active")


@triggers_app.command("readout")
def triggers_readout() -> None:
    """Lift per trigger (fired vs held out, within the outcome window) into activation.trigger_lift."""
    from pulse.triggers.readout import read_out_trigger_lift

    console.print(
        f"lift readouts: {read_out_trigger_lift(get_settings())} trigger(s) with both groups matured"
    )
