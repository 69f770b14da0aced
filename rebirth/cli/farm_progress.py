"""What `rebirth farm run` shows while it runs: one live row per device on a terminal, one line per device
event elsewhere (the summary at the end is ``reports.render_farm_summary``)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any, Optional, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from rebirth.cli.progress import STAGES
from rebirth.devices import Outcome

FARM_STAGES = {**STAGES, "store": "storing the result", "push": "pushing", "warmup": "warming up",
               "pull": "pulling the ETDump"}
COUNTED = ("warmup", "run")


class FarmView:
    """A ``FarmListener`` for a terminal or a log; safe to call from the devices' worker threads."""

    def __init__(self, devices: Sequence[str] = (), enabled: bool = True, stream: Optional[TextIO] = None):
        # Bound now: profiling silences sys.stderr for a moment in each worker, and the view must not follow.
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream)
        self.enabled = enabled
        self.devices = list(devices)
        self.live: Optional[Progress] = None
        self.rows: dict[str, TaskID] = {}
        self.shown: dict[str, str] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> FarmView:
        if self.devices:
            self.begin(self.devices)
        return self

    def begin(self, devices: Sequence[str]) -> None:
        """The devices are known: one row each on a terminal (rows only where they can redraw; lines elsewhere)."""
        self.devices = list(devices)
        if not (self.enabled and self.console.is_terminal) or self.live is not None:
            return
        self.live = Progress(TextColumn("{task.fields[device]:<14}"), TextColumn("{task.description:<22}"),
                             BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             TextColumn("{task.fields[status]}"), console=self.console,
                             redirect_stdout=False, redirect_stderr=False)
        for device in self.devices:
            self.rows[device] = self.live.add_task("waiting", total=None, device=escape(device), status="")
        self.live.start()

    def __exit__(self, *exc) -> None:
        if self.live:
            self.live.stop()

    def stage(self, device: str, stage: str) -> None:
        text = FARM_STAGES.get(stage, stage)
        if self.live:
            self.live.update(self.rows[device], description=text)
        else:
            self._line(device, text)

    def progress(self, device: str, stage: str, done: int, total: int) -> None:
        """Executions fill the device's bar; pushes and pulls only name the stage."""
        if not self.live:
            self._line(device, FARM_STAGES.get(stage, stage))
            return
        counted = stage in COUNTED
        self.live.update(self.rows[device], description=FARM_STAGES.get(stage, stage),
                         completed=done if counted else 0, total=total if counted else None)

    def finished(self, run: Outcome[Any]) -> None:
        status = f"done in {run.seconds:.1f} s" if run.ok else f"FAILED: {run.error}"
        if self.live:
            self.live.update(self.rows[run.device], description="done" if run.ok else "failed",
                             status=escape(status) if run.ok else f"[red]{escape(status)}[/]")
        else:
            self._line(run.device, status)

    def _line(self, device: str, text: str) -> None:
        """One line per change of what a device is doing."""
        with self.lock:
            if self.enabled and self.shown.get(device) != text:
                self.shown[device] = text
                print(f"{device}: {text}", file=self.stream, flush=True)
