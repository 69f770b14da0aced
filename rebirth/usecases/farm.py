"""A farm session: one job on many devices at once, one worker thread each, and a clean end however it ends.

The session knows which devices it runs on (named ones, or phones leased from a DeviceFarmer STF server for the
session), opens each in its worker, and keeps what is open. On Ctrl-C or SIGTERM it stops: every open device is
aborted (the runner killed, a phone's connection closed), every worker is waited for, then leased phones are
given back, and the interruption goes on to the caller (the command line exits 130). Nothing uses a phone
after it was given back, and no worker thread outlives the session.

``farm_run`` (`rebirth farm run`) is the session's main use: profile one program everywhere and store each
result as soon as its device is done.
"""

from __future__ import annotations

import datetime
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Optional, Protocol, TypeVar

from rebirth.contract.errors import DeviceError, InputError
from rebirth.contract.profile import Profile
from rebirth.devices import Device, Outcome, open_device, resolve_targets
from rebirth.profiler import ProfileOptions, Program, Timelines, prepare, profile_program
from rebirth.profiler.measure import DEFAULT_BACKEND

T = TypeVar("T")
Say = Callable[[str], None]
STOP_WAIT_S = 30.0
"""How long an interrupted session waits for its workers once their devices were aborted."""


class FarmListener(Protocol):
    """What a farm session tells its view, from the devices' worker threads."""

    def begin(self, devices: Sequence[str]) -> None:
        """The devices are known (after any leasing); work starts."""

    def stage(self, device: str, stage: str) -> None: ...

    def progress(self, device: str, stage: str, done: int, total: int) -> None: ...

    def finished(self, run: Outcome[Any]) -> None:
        """A device's work ended (its result, or why it failed)."""


@dataclass(frozen=True)
class Targets:
    """Which devices a session runs on: names (``resolve_targets``), every device of the inventory, a group, or
    ``stf_count`` phones leased from STF (``stf_url``: the server, or "" for devices.toml's ``[stf] url``)."""

    names: tuple[str, ...] = ()
    all: bool = False
    group: Optional[str] = None
    stf_url: Optional[str] = None
    stf_select: Optional[str] = None
    stf_count: int = 1

    @property
    def leased(self) -> bool:
        return self.stf_url is not None

    def check(self) -> None:
        """Raises InputError for STF options without STF."""
        if not self.leased and (self.stf_select is not None or self.stf_count != 1):
            raise InputError("--stf-select and --count choose phones to lease from STF: add --stf URL")


class Interrupted(KeyboardInterrupt):
    """The session was stopped by Ctrl-C or SIGTERM, after its cleanup."""


class FarmSession:
    """Use as a context manager: on entry the targets are resolved (phones leased), on exit given back.

    Args:
        targets: which devices.
        listener: the view (its ``begin`` gets the device names once known).
        say: one-line messages (leases taken and given back).
    """

    def __init__(self, targets: Targets, listener: FarmListener, say: Say = lambda text: None):
        self.targets = targets
        self.listener = listener
        self.say = say
        self.devices: list[str] = []
        self._stack = ExitStack()
        self._open: dict[str, Device] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def __enter__(self) -> FarmSession:
        self.targets.check()
        self._signals = self._stack.enter_context(_signals_raise_interrupted(self.say))
        try:
            self.devices = self._resolve()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._signals.seen = True  # a signal now must not cut the giving back short
        self._stack.close()

    def _resolve(self) -> list[str]:
        if not self.targets.leased:
            targets = self.targets
            return resolve_targets(targets.names, targets.all, targets.group)
        from rebirth.devices.inventory import read_inventory
        from rebirth.devices.stf import leased, parse_selection, stf_server

        server = stf_server(self.targets.stf_url or None, read_inventory().stf)
        leases = self._stack.enter_context(leased(server, parse_selection(self.targets.stf_select),
                                                  self.targets.stf_count, say=self.say))
        return [lease.address for lease in leases]

    def run(self, job: Callable[[Device], T],
            expected: tuple[type[Exception], ...] = (DeviceError, InputError)) -> list[Outcome[T]]:
        """``job(device)`` on every device at once, each device opened in its own worker.

        Returns:
            One Outcome per device, in order; a job that raised one of ``expected`` is a failed Outcome with the
            error's first line. Anything else is a bug and raises once every worker has ended.

        Raises:
            Interrupted: Ctrl-C or SIGTERM, once every worker has stopped.
        """
        self.listener.begin(self.devices)
        results: dict[str, Outcome[T]] = {}
        bugs: list[BaseException] = []
        workers = [threading.Thread(target=self._work, args=(name, job, expected, results, bugs), daemon=True,
                                    name=f"farm-{name}") for name in self.devices]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        except KeyboardInterrupt:
            self._stop(workers)
            raise Interrupted() from None
        if bugs:
            raise bugs[0]
        return [results[name] for name in self.devices]

    def _work(self, name: str, job: Callable[[Device], T], expected: tuple[type[Exception], ...],
              results: dict[str, Outcome[T]], bugs: list[BaseException]) -> None:
        start = time.monotonic()
        try:
            with self._opened(name) as device:
                outcome = Outcome(name, result=job(device), seconds=time.monotonic() - start)
        except expected as error:
            outcome = Outcome(name, error=_first_line(error), seconds=time.monotonic() - start)
        except BaseException as error:  # a bug: raised by run() once every worker has ended
            bugs.append(error)
            return
        results[name] = outcome
        if not self._stopping.is_set():
            with self._lock:
                self.listener.finished(outcome)

    def _opened(self, name: str) -> Device:
        device = open_device(name)
        with self._lock:
            if self._stopping.is_set():
                device.close()
                raise DeviceError(f"{name}: the session was interrupted", device=name, step="open")
            self._open[name] = device
        return _Registered(device, lambda: self._forget(name))  # type: ignore[return-value]

    def _forget(self, name: str) -> None:
        with self._lock:
            self._open.pop(name, None)

    def _stop(self, workers: Sequence[threading.Thread]) -> None:
        """Abort every open device and wait for the workers, however many more signals come."""
        self.say("rebirth: interrupted: stopping the runs")
        with self._lock:
            self._stopping.set()
            opened = list(self._open.values())
        for device in opened:
            device.abort()
        deadline = time.monotonic() + STOP_WAIT_S
        for worker in workers:
            while worker.is_alive() and time.monotonic() < deadline:
                try:
                    worker.join(max(0.0, deadline - time.monotonic()))
                except KeyboardInterrupt:
                    continue
        left = [worker.name for worker in workers if worker.is_alive()]
        if left:
            self.say(f"rebirth: {len(left)} device worker(s) did not stop within {STOP_WAIT_S:g} s: {', '.join(left)}")


class _Registered(Generic[T]):
    """A device as a context manager that also leaves the session's list of open devices when it closes."""

    def __init__(self, device: Device, forget: Callable[[], None]):
        self.device, self.forget = device, forget

    def __enter__(self) -> Device:
        return self.device

    def __exit__(self, *exc: object) -> None:
        self.forget()
        self.device.close()


class _signals_raise_interrupted:  # noqa: N801  (used as a context manager, like contextlib's)
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread while the session lasts; one signal
    starts the stop, later ones are told to wait. SIGINT too: a process started with SIGINT ignored (as some
    CI runners and tox start commands) would otherwise run on after Ctrl-C, holding leased phones."""

    def __init__(self, say: Say):
        self.say = say
        self.seen = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _signals_raise_interrupted:
        if threading.current_thread() is not threading.main_thread():
            return self
        for number in (signal.SIGINT, signal.SIGTERM):
            self.previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.seen:
            print("rebirth: stopping: the runs end and leased phones go back first", file=sys.stderr)
            return
        self.seen = True
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


@dataclass(frozen=True)
class Stored:
    """One device's Profile and where the store keeps it (``STORE#FINGERPRINT/NNNN``)."""

    profile: Profile
    where: str


FarmRun = Outcome[Stored]
"""One device's part of a farm run: its stored Profile, or the one-line reason it failed."""


def farm_run(model: str, targets: Targets, store: Optional[str], options: ProfileOptions, listener: FarmListener,
             *, etrecord: Optional[Path] = None, say: Say = lambda text: None,
             timelines: Optional[Timelines] = None) -> list[FarmRun]:
    """`rebirth farm run`: export ``model`` once, profile it on every target at once, store each result (and
    each device's timeline into ``timelines`` when given).

    Raises:
        InputError: the model cannot be read or exported (before any device is used), or a bad inventory.
        DeviceError: STF cannot lease a phone.
        Interrupted: Ctrl-C or SIGTERM, once the workers stopped and any leased phone was given back.
    """
    from rebirth.results import current_branch, current_commit, open_store

    with open_store(store, say) as opened, FarmSession(targets, listener, say) as session:
        programs = _Programs(model, options.backend, etrecord)
        programs.get(None)  # a wrong model is said before any device is used
        commit, branch = current_commit(), current_branch()
        batch = f"{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%S}-{os.getpid()}-{secrets.token_hex(3)}"

        def job(device: Device) -> Stored:
            name = device.name
            profiled = profile_program(programs.get(device.defaults.backend), device, options,
                                       progress=lambda stage, done, total: listener.progress(name, stage, done, total),
                                       stage=lambda stage: listener.stage(name, stage), timelines=timelines)
            listener.stage(name, "store")
            return Stored(profiled, opened.save_run(profiled, commit, batch, branch=branch).where)

        return session.run(job)


class _Programs:
    """The model exported once per backend the farm's devices want: the command line's backend for every device
    when it names one, else each device's from devices.toml (``rebirth tune --save``), else xnnpack."""

    def __init__(self, model: str, backend: Optional[str], etrecord: Optional[Path]):
        self.model, self.backend, self.etrecord = model, backend, etrecord
        self._made: dict[str, Program] = {}
        self._lock = threading.Lock()

    def get(self, device_backend: Optional[str]) -> Program:
        backend = self.backend or device_backend or DEFAULT_BACKEND
        with self._lock:
            if backend not in self._made:
                self._made[backend] = prepare(self.model, backend, self.etrecord)
            return self._made[backend]
