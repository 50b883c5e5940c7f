"""Where the commands write: messages and progress to stderr, data to stdout (`pulse up | tail -1`)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

console = Console(stderr=True)
out = Console()


def _fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _progress(bytes_: bool = False) -> Progress:
    counter = DownloadColumn() if bytes_ else MofNCompleteColumn()
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        counter,
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
