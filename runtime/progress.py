"""`vigie run`'s download progress bars (rich), drawn only on a terminal.

Sources never print: they report `(received, total)` through the callback `HttpSource.report_downloads` takes
(producers/http.py). `DownloadBars.reporter(name)` is such a callback; it draws one transient bar per download
(bytes, speed, time left when the size is known) and removes it when the source says the body is complete.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from producers.http import Downloaded


class DownloadBars:
    """Use as `with DownloadBars(console) as bars:`; `enabled` is False (nothing drawn) off a terminal."""

    def __init__(self, console: Console) -> None:
        self.enabled = console.is_terminal
        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                              TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> DownloadBars:
        if self.enabled:
            self._bars.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.enabled:
            self._bars.stop()

    def reporter(self, name: str) -> Downloaded:
        """The callback a source reports a download of `name` to."""

        def report(received: int, total: int | None) -> None:
            self.update(name, received, total)

        return report

    def update(self, name: str, received: int, total: int | None) -> None:
        if not self.enabled:
            return
        done = total is not None and received >= total
        task = self._tasks.get(name)
        if task is None:
            if done:  # the end of a bar already removed, or a body too small to draw
                return
            task = self._tasks[name] = self._bars.add_task(f"downloading {name}", total=total)
            self._bars.update(task, completed=received, total=total)
            self._bars.refresh()  # drawn at once, not at the next tick: a download may end before it
        self._bars.update(task, completed=received, total=total)
        if done:
            self._bars.remove_task(self._tasks.pop(name))

    @property
    def drawing(self) -> list[str]:
        """The downloads being drawn now (for tests)."""
        return sorted(self._tasks)
