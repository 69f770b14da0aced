"""Progress shown on stderr while a profile runs: the stage, then a bar over executions."""

from __future__ import annotations

from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

STAGES = {"export": "exporting the model (torch.export + lowering)", "read": "reading the .pte",
          "run": "running on the device", "analyse": "reading the ETDump"}


class ProgressView:
    """A context manager whose ``stage`` and ``update`` methods are the profile callbacks."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress: Optional[Progress] = None
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "ProgressView":
        if self.enabled:
            self.progress = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()

    def stage(self, name: str) -> None:
        if self.progress:
            self.progress.console.print(f"[dim]… {STAGES.get(name, name)}[/]", highlight=False)

    def update(self, stage: str, done: int, total: int) -> None:
        if not self.progress:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)
