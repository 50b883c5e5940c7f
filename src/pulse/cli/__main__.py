"""`python -m pulse.cli ...`, as the `pulse` command."""

from pulse.cli import app

app()
