"""Progress shown on stderr while a profile runs: the stage, then a bar over executions."""

from __future__ import annotations

from typing import Optional

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

STAGES = {"export": "exporting the model (torch.export + lowering)", "read": "reading the .pte",
          "run": "running on the device", "analyse": "reading the ETDump",
          "build": "building rebirth's runner for the phone (once)",
          "cold": "timing the start in fresh runner processes (--cold)"}


BYTE_STAGES = ("push", "pull")


class CountOrBytesColumn(ProgressColumn):
    """``12/20`` for runs, ``3.1/50.0 MB`` for pushes and pulls."""

    def __init__(self):
        super().__init__()
        self.count, self.bytes = MofNCompleteColumn(), DownloadColumn()

    def render(self, task):
        return (self.bytes if task.fields.get("unit") == "bytes" else self.count).render(task)


class ProgressView:
    """A context manager whose ``stage``, ``update`` and ``say`` methods are the use cases' callbacks."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress: Optional[Progress] = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressView:
        if self.enabled and self.console.is_terminal:  # bars only where they can redraw; stages always
            self.progress = Progress(TextColumn("{task.description:<10}"), BarColumn(), CountOrBytesColumn(),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()

    def say(self, text: str) -> None:
        """A line of what the work is doing, as it is (no markup)."""
        self.console.print(text, highlight=False, markup=False)

    def stage(self, name: str) -> None:
        if self.enabled:
            console = self.progress.console if self.progress else self.console
            console.print(f"[dim]… {STAGES.get(name, name)}[/]", highlight=False)

    def update(self, stage: str, done: int, total: int) -> None:
        if not self.progress:
            return
        if stage not in self.tasks:
            unit = "bytes" if stage in BYTE_STAGES else "runs"
            self.tasks[stage] = self.progress.add_task(stage, total=total, unit=unit)
        self.progress.update(self.tasks[stage], completed=done, total=total)
