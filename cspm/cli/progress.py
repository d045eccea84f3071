"""A download progress bar on stderr, only when a person is watching (a terminal and no --json)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from cspm.cli.output import err


class DownloadBar:
    """`plan(count, total_bytes)` once, then `(what, received)` from the download threads."""

    def __init__(self) -> None:
        self.bar = Progress(TextColumn("[bold]downloading[/] {task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(), console=err, transient=True)
        self.task = self.bar.add_task("", total=None)
        self.lock = threading.Lock()

    def plan(self, count: int, total: int) -> None:
        self.bar.update(self.task, total=total, description=f"{count} blob{'s' if count != 1 else ''}")

    def __call__(self, what: str, received: int) -> None:
        with self.lock:
            self.bar.advance(self.task, received)


@contextmanager
def download_bar(enabled: bool = True) -> Iterator[DownloadBar | None]:
    if not enabled or not err.is_terminal:
        yield None
        return
    bar = DownloadBar()
    with bar.bar:
        yield bar
