"""A rich progress bar with MB/s and ETA, shown only on a terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .base import is_terminal

#: seconds without a finished block before the bar says "stalled"
STALL_SHOWN_S = 10.0


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool | None = None) -> Iterator[Any]:
    """Yield a callback for curation.omezarr.writer.Progress events (or None)."""
    if enabled is None:
        enabled = is_terminal()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    # speed and ETA come from the event: they leave out shards finished by an earlier,
    # interrupted run, which rich's own columns would count as instant progress
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                  TextColumn("{task.fields[speed]}"), TextColumn("{task.fields[eta]}"),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=None, speed="", eta="")

        def update(ev: Any) -> None:
            if ev.stage == "write":
                eta = ev.eta_s
                idle = getattr(ev, "idle_s", 0.0)
                if idle >= STALL_SHOWN_S:  # say it, instead of a frozen rate and ETA
                    speed, eta_text = f"[yellow]stalled {int(idle)} s", "waiting for a block"
                else:
                    speed = f"{ev.rate / 1e6:.0f} MB/s"
                    eta_text = "" if eta is None else f"ETA {int(eta // 60)}:{int(eta % 60):02d}"
                bar.update(task, total=ev.total_bytes, completed=ev.done_bytes,
                           description=f"{description}: {ev.done_units}/{ev.total_units} shards",
                           speed=speed, eta=eta_text)
            elif ev.stage == "save":
                bar.update(task, description=f"{description}: saving with DataLad")

        yield update
