"""A rich progress bar with MB/s and ETA, shown only on a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .base import is_terminal


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool | None = None) -> Iterator[Any]:
    """Yield a callback for curation.omezarr.writer.Progress events (or None)."""
    if enabled is None:
        enabled = is_terminal()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  transient=False) as bar:
        task = bar.add_task(description, total=None)

        def update(ev: Any) -> None:
            if ev.stage == "write":
                bar.update(task, total=ev.total_bytes, completed=ev.done_bytes,
                           description=f"{description}: {ev.done_units}/{ev.total_units} shards")
            elif ev.stage == "save":
                bar.update(task, description=f"{description}: saving with DataLad")

        yield update
