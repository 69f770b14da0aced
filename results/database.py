"""The result store in a database: SQLite (the standard library's, the default) or a team's PostgreSQL server.

One table holds every run: its summary (device fingerprint, model, commit, branch, time, p50 with its interval,
peak RSS, energy, noise flags) in columns, and its whole Profile beside them, compressed. Queries (listing,
baselines, noise learning, the history) read the columns only; a Profile is read when a run is judged or
exported. Runs are numbered per fingerprint and never rewritten; a baseline names the runs it holds.

Writers are safe across threads and processes: SQLite in WAL mode (writers take the write lock with
``BEGIN IMMEDIATE`` and wait for each other), PostgreSQL with an advisory lock per fingerprint while a run takes
its number. A run whose stored form cannot be read (a foreign or damaged row) is moved to ``set_aside`` with the
reason, named in one line, and every other run stays usable.

After a crash (a SQLite write-ahead log left behind while no rebirth process has the store open), and when asked
(``rebirth results check``), the SQLite store checks its own integrity.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rebirth.contract.errors import InputError
from rebirth.contract.names import NAME_RULE, is_name
from rebirth.contract.profile import Profile
from rebirth.contract.stored import Key, RunSummary, StoredRun, key_of

SCHEMA_VERSION = 1
SQLITE_FILE = "rebirth.sqlite"
"""The SQLite store's file inside a store folder."""
BUSY_TIMEOUT_S = 120.0
SCHEMA_LOCK = 0x7265_6269_7274_68
"""PostgreSQL's advisory lock while the tables are made ("rebirth" in ASCII)."""

Say = Callable[[str], None]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    fingerprint TEXT NOT NULL,
    number INTEGER NOT NULL,
    model_key TEXT NOT NULL,
    model TEXT NOT NULL,
    device TEXT NOT NULL,
    commit_sha TEXT,
    branch TEXT,
    time TEXT NOT NULL,
    batch TEXT,
    model_sha256 TEXT,
    p50_ms {real} NOT NULL,
    p50_low_ms {real} NOT NULL,
    p50_high_ms {real} NOT NULL,
    peak_rss_bytes BIGINT,
    energy_mj {real},
    noise TEXT NOT NULL,
    profile {blob} NOT NULL,
    PRIMARY KEY (fingerprint, number)
);
CREATE INDEX IF NOT EXISTS runs_by_model ON runs (model_key, fingerprint, number);
CREATE INDEX IF NOT EXISTS runs_by_device ON runs (device, number);
CREATE INDEX IF NOT EXISTS runs_by_model_name ON runs (model, fingerprint, number);
CREATE TABLE IF NOT EXISTS baselines (
    name TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    number INTEGER NOT NULL,
    saved TEXT NOT NULL,
    PRIMARY KEY (name, fingerprint, number)
);
CREATE TABLE IF NOT EXISTS set_aside (
    fingerprint TEXT NOT NULL,
    number INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    profile {blob},
    PRIMARY KEY (fingerprint, number)
);
"""

BASELINE_NAMED = "SELECT 1 FROM baselines WHERE name = ? LIMIT 1"

SUMMARY = ("fingerprint, number, model_key, device, commit_sha, time, batch, branch, model_sha256, p50_ms, "
           "p50_low_ms, p50_high_ms, peak_rss_bytes, energy_mj, noise")


@dataclass(frozen=True)
class Dialect:
    """What differs between SQLite and PostgreSQL in the store's SQL."""

    name: str
    real: str
    blob: str
    placeholder: str

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


SQLITE = Dialect("sqlite", "REAL", "BLOB", "?")
POSTGRES = Dialect("postgresql", "DOUBLE PRECISION", "BYTEA", "%s")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def pack(profile: Profile) -> bytes:
    """A Profile's stored form: its JSON, zlib-compressed."""
    return zlib.compress(json.dumps(profile.to_dict(), separators=(",", ":"), allow_nan=False).encode(), 6)


def unpack(blob: Any) -> Profile:
    """
    Raises:
        ValueError: not a stored Profile.
    """
    try:
        return Profile.from_dict(json.loads(zlib.decompress(bytes(blob))))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{type(error).__name__}: {error}") from None


class DatabaseStore:
    """The store in one database; open it with ``rebirth.results.open_store``. Safe to share between threads."""

    def __init__(self, location: str, connect: Callable[[], tuple[Any, Callable[[], None]]], dialect: Dialect,
                 errors: tuple[type[BaseException], ...], exists: Callable[[], bool] = lambda: True):
        self.location = location
        self.dialect = dialect
        self._connect = connect
        self._exists = exists
        self._errors = errors
        self._lock = threading.RLock()
        self._connection: Any = None
        self._release: Callable[[], None] = _nothing
        self._closed = False
        self._made = exists()
        if self._made:
            self._connection, self._release = connect()
            self._prepare()

    def _prepare(self) -> None:
        """Make the tables if they are missing, and check the store is one this rebirth reads."""
        with self._failing("cannot open the store"), self._write():
            if self.dialect is POSTGRES:  # CREATE TABLE IF NOT EXISTS races with another runner's on PostgreSQL
                self._execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
            for statement in SCHEMA.format(real=self.dialect.real, blob=self.dialect.blob).split(";"):
                if statement.strip():
                    self._connection.execute(statement)
            self._connection.execute(self.dialect.sql(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"),
                ("schema", str(SCHEMA_VERSION)))
        schema = self.meta("schema")
        if schema != str(SCHEMA_VERSION):
            raise InputError(f"{self.location}: a store of schema {schema}, newer than this rebirth reads "
                             f"({SCHEMA_VERSION}): upgrade rebirth")

    def __repr__(self) -> str:
        return f"<rebirth store {self.location}>"

    def __str__(self) -> str:
        return self.location

    def close(self) -> None:
        """Close the connection; a run's Profile asked for later is still read (through a connection of its own)."""
        with self._lock:
            self._closed = True
            self._disconnect()

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._release()
            self._connection = None

    @contextmanager
    def _open(self, write: bool = False) -> Iterator[None]:
        """The connection: made again for the while if the store was closed, and made with the store itself on its
        first write (until then, a store that does not exist reads as empty, and nothing is written to disk)."""
        with self._lock:
            if self._connection is not None:
                yield
                return
            if not self._made and not self._exists() and not write:
                yield  # no connection: the queries find nothing
                return
            self._connection, self._release = self._connect()
            if not self._made:
                self._made = True
                self._prepare()
            if not self._closed:
                yield  # open from now on, as an open store is
                return
            try:
                yield
            finally:
                self._disconnect()

    def __enter__(self) -> DatabaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------------------

    @contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        """A database error as one line naming the store."""
        try:
            yield
        except self._errors as error:
            hint = ""
            if any(sign in str(error) for sign in ("malformed", "not a database", "corrupt")):
                hint = f"; rebirth results check --store {self.location} says what can be read"
            raise InputError(f"{self.location}: {what} ({_first_line(error)}){hint}") from None

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, serialised with every other writer of the store."""
        with self._open(write=True):
            if self.dialect is SQLITE:
                self._connection.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    self._connection.execute("ROLLBACK")
                    raise
                self._connection.execute("COMMIT")
            else:
                with self._connection.transaction():
                    yield

    def _query(self, text: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        with self._open(), self._failing("cannot read the store"):
            if self._connection is None:
                return []
            return list(self._connection.execute(self.dialect.sql(text), tuple(parameters)).fetchall())

    def _execute(self, text: str, parameters: Sequence[Any] = ()) -> None:
        self._connection.execute(self.dialect.sql(text), tuple(parameters))

    def meta(self, key: str) -> Optional[str]:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    # -- runs -------------------------------------------------------------------------------------------------

    def save_run(self, profile: Profile, commit: Optional[str] = None, batch: Optional[str] = None,
                 time_run: Optional[str] = None, branch: Optional[str] = None) -> StoredRun:
        """Store ``profile`` as the next numbered run of its device fingerprint.

        Raises:
            InputError: the store cannot be written (a full disk, a store that is not a database).
        """
        fingerprint, _ = key_of(profile)
        blob = pack(profile)
        with self._failing("cannot store the run"), self._write():
            if self.dialect is POSTGRES:
                self._execute("SELECT pg_advisory_xact_lock(hashtext(?))", (fingerprint,))
            number = self._next_number(fingerprint)
            run = StoredRun.of(self._where(fingerprint, number), number, profile, profile.device.name, commit,
                               time_run or now(), batch, branch)
            self._insert(run, blob)
        return run

    def _next_number(self, fingerprint: str) -> int:
        rows = self._connection.execute(self.dialect.sql(
            "SELECT MAX(number) FROM runs WHERE fingerprint = ? UNION ALL "
            "SELECT MAX(number) FROM set_aside WHERE fingerprint = ?"), (fingerprint, fingerprint)).fetchall()
        return max((row[0] for row in rows if row[0] is not None), default=0) + 1

    def _insert(self, run: StoredRun, blob: bytes) -> None:
        summary = run.summary
        self._execute(
            f"INSERT INTO runs ({SUMMARY}, model, profile) VALUES ({', '.join('?' * 17)})",
            (run.fingerprint, run.number, run.model_key, run.device, run.commit, run.time, run.batch, run.branch,
             run.model_sha256, summary.p50_ms, summary.p50_low_ms, summary.p50_high_ms, summary.peak_rss_bytes,
             summary.energy_mj, json.dumps(list(summary.noise)), run.model_key.rpartition("@")[0], blob))

    def runs(self, device: Optional[str] = None, model: Optional[str] = None, say: Optional[Say] = None,
             last: Optional[int] = None) -> list[StoredRun]:
        """Every stored run, by fingerprint then number (only the latest ``last``, if given); ``device`` (a device
        name or a fingerprint) and ``model`` (a model key, or the model as named without the backend) keep only
        matching runs. Reads the summaries only: a run's Profile is read when asked for."""
        where, parameters = _filters(device, model)
        order = "ORDER BY time DESC, fingerprint DESC, number DESC LIMIT ?" if last is not None else ""
        rows = self._query(f"SELECT {SUMMARY} FROM runs {where} {order}", parameters + ([last] if last else []))
        runs = self._summaries(rows, say)
        return sorted(runs, key=lambda run: (run.fingerprint, run.number))

    def frame(self, device: Optional[str] = None, model: Optional[str] = None) -> Any:
        """Every stored run's summary as a pandas DataFrame, a row per run (by fingerprint, then number)."""
        import pandas

        columns = ["fingerprint", "number", "model_key", "device", "commit", "branch", "time", "batch",
                   "model_sha256", "p50_ms", "p50_low_ms", "p50_high_ms", "peak_rss_bytes", "energy_mj", "noise",
                   "where"]
        rows = [(run.fingerprint, run.number, run.model_key, run.device, run.commit, run.branch, run.time, run.batch,
                 run.model_sha256, run.summary.p50_ms, run.summary.p50_low_ms, run.summary.p50_high_ms,
                 run.summary.peak_rss_bytes, run.summary.energy_mj, "; ".join(run.summary.noise), run.where)
                for run in self.runs(device, model)]
        frame = pandas.DataFrame(rows, columns=columns)
        frame["time"] = pandas.to_datetime(frame["time"], utc=True, format="ISO8601")
        return frame

    def count(self) -> int:
        rows = self._query("SELECT COUNT(*) FROM runs")
        return int(rows[0][0]) if rows else 0

    def _summaries(self, rows: Iterable[tuple], say: Optional[Say]) -> list[StoredRun]:
        runs = []
        for row in rows:
            try:
                runs.append(self._run(row))
            except (TypeError, ValueError, json.JSONDecodeError) as error:
                reason = f"its summary cannot be read ({error})"
                done = self._set_aside(row[0], row[1], reason)
                (say or _to_stderr)(f"{self._where(row[0], row[1])}: {reason}: {done}")
        return runs

    def _run(self, row: tuple) -> StoredRun:
        (fingerprint, number, model_key, device, commit, time, batch, branch, sha, p50, low, high, rss, energy,
         noise) = row
        flags = json.loads(noise)
        if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
            raise ValueError(f"noise flags {noise!r}")
        summary = RunSummary(float(p50), float(low), float(high), None if rss is None else int(rss), tuple(flags),
                             None if energy is None else float(energy))
        return StoredRun(self._where(fingerprint, number), int(number), fingerprint, model_key, device,
                         commit, time, summary, batch, branch, sha,
                         loader=lambda: self.profile_of(fingerprint, int(number)))

    def _where(self, fingerprint: str, number: int) -> str:
        return f"{self.location}#{fingerprint}/{int(number):04d}"

    def profile_of(self, fingerprint: str, number: int) -> Profile:
        """One run's Profile.

        Raises:
            InputError: no such run, or it cannot be read (it is then set aside).
        """
        rows = self._query("SELECT profile FROM runs WHERE fingerprint = ? AND number = ?", (fingerprint, number))
        where = self._where(fingerprint, number)
        if not rows:
            raise InputError(f"{where}: no such stored run (set aside or removed)")
        try:
            return unpack(rows[0][0])
        except ValueError as error:
            reason = f"its profile cannot be read ({error})"
            raise InputError(f"{where}: {reason}: {self._set_aside(fingerprint, number, reason)}") from None

    def _set_aside(self, fingerprint: str, number: int, reason: str) -> str:
        """Move a run that cannot be read out of every later read (its number stays taken); what became of it."""
        try:
            with self._write():
                self._execute("INSERT INTO set_aside (fingerprint, number, reason, at, profile) SELECT fingerprint, "
                              "number, ?, ?, profile FROM runs WHERE fingerprint = ? AND number = ? "
                              "ON CONFLICT (fingerprint, number) DO NOTHING", (reason, now(), fingerprint, number))
                self._execute("DELETE FROM runs WHERE fingerprint = ? AND number = ?", (fingerprint, number))
            return "set aside (rebirth results check lists it)"
        except self._errors as error:
            return f"left out (it cannot be set aside: {_first_line(error)})"

    def set_aside_runs(self) -> list[tuple[str, int, str, str]]:
        """(fingerprint, number, reason, when) of every run set aside."""
        return [(row[0], int(row[1]), row[2], row[3]) for row in self._query(
            "SELECT fingerprint, number, reason, at FROM set_aside ORDER BY fingerprint, number")]

    def import_runs(self, runs: Sequence[StoredRun], baselines: dict[str, list[tuple[str, int, Any]]],
                    aside: Sequence[tuple[str, int, str]],
                    marker: str) -> Optional[tuple[int, int, int, list[str], list[str]]]:
        """Import another store's runs (each with its Profile) and baselines (name: (fingerprint, number, _) of its
        runs) in one transaction, unless ``marker`` says they were; ``aside`` (fingerprint, number, why) are its
        runs that could not be read, whose numbers stay taken where they are free. A run keeps its number; one
        whose number is taken by another run takes the next free one, and one that is here already (the same
        fingerprint, number, time, device and p50) is not stored twice. A baseline whose name is taken keeps the
        store's.

        Returns:
            (runs imported, runs here already, runs renumbered, baselines imported, baselines whose name was
            taken), or None when ``marker`` was set already.
        """
        imported = already = renumbered = 0
        done, taken = [], []
        with self._failing("cannot import the runs"), self._write():
            if self._connection.execute(self.dialect.sql("SELECT 1 FROM meta WHERE key = ?"), (marker,)).fetchall():
                return None
            numbers: dict[tuple[str, int], int] = {}
            for run in runs:
                if self.dialect is POSTGRES:
                    self._execute("SELECT pg_advisory_xact_lock(hashtext(?))", (run.fingerprint,))
                there = self._connection.execute(self.dialect.sql(
                    "SELECT time, device, p50_ms FROM runs WHERE fingerprint = ? AND number = ? UNION ALL "
                    "SELECT '', '', 0 FROM set_aside WHERE fingerprint = ? AND number = ?"),
                    (run.fingerprint, run.number) * 2).fetchall()
                if there and tuple(there[0]) == (run.time, run.device, run.summary.p50_ms):
                    already += 1
                    numbers[(run.fingerprint, run.number)] = run.number
                    continue
                number = self._next_number(run.fingerprint) if there else run.number
                renumbered += bool(there)
                copy = StoredRun.of(self._where(run.fingerprint, number), number, run.profile, run.device, run.commit,
                                    run.time, run.batch, run.branch)
                self._insert(copy, pack(run.profile))
                numbers[(run.fingerprint, run.number)] = number
                imported += 1
            saved = now()
            for fingerprint, number, reason in aside:
                self._execute("INSERT INTO set_aside (fingerprint, number, reason, at) SELECT ?, ?, ?, ? WHERE NOT "
                              "EXISTS (SELECT 1 FROM runs WHERE fingerprint = ? AND number = ?) "
                              "ON CONFLICT (fingerprint, number) DO NOTHING",
                              (fingerprint, number, reason, saved, fingerprint, number))
            for name, members in sorted(baselines.items()):
                if self._baseline_exists(name):
                    taken.append(name)
                    continue
                for fingerprint, number, _ in members:
                    if (fingerprint, number) in numbers:
                        self._execute("INSERT INTO baselines (name, fingerprint, number, saved) VALUES (?, ?, ?, ?)",
                                      (name, fingerprint, numbers[(fingerprint, number)], saved))
                done.append(name)
            self._execute("INSERT INTO meta (key, value) VALUES (?, ?)", (marker, saved))
        return imported, already, renumbered, done, taken

    # -- baselines --------------------------------------------------------------------------------------------

    def save_baseline(self, name: str, runs: Sequence[StoredRun], force: bool = False) -> int:
        """Name ``runs`` (the latest of each fingerprint and model) baseline ``name``, all at once.

        Raises:
            InputError: a bad name, no runs, or a baseline of that name exists and ``force`` is off.
        """
        if not is_name(name):
            raise InputError(f"{name!r} cannot name a baseline ({NAME_RULE})")
        if not runs:
            raise InputError(f"{self.location}: no stored runs to make baseline {name!r} of "
                             "(rebirth farm run stores them)")
        with self._failing("cannot write the baseline"), self._write():
            if self._baseline_exists(name) and not force:
                raise InputError(f"{self.location}: baseline {name!r} exists; pass --force to replace it")
            self._execute("DELETE FROM baselines WHERE name = ?", (name,))
            saved = now()
            for run in runs:
                self._execute("INSERT INTO baselines (name, fingerprint, number, saved) VALUES (?, ?, ?, ?)",
                              (name, run.fingerprint, run.number, saved))
        return len(runs)

    def _baseline_exists(self, name: str) -> bool:
        """Whether a baseline is named ``name``, inside the write transaction that is open."""
        return bool(self._connection.execute(self.dialect.sql(BASELINE_NAMED), (name,)).fetchall())

    def baseline_names(self) -> list[str]:
        return [row[0] for row in self._query("SELECT DISTINCT name FROM baselines ORDER BY name")]

    def baseline(self, name: str, say: Optional[Say] = None, device: Optional[str] = None,
                 model: Optional[str] = None) -> dict[Key, Profile]:
        """A baseline's Profiles by ``key_of`` (only ``device``'s and ``model``'s, if given, as ``runs`` filters).

        Raises:
            InputError: no such baseline.
        """
        where, parameters = _filters(device, model)
        members = self._query(
            "SELECT b.fingerprint, b.number FROM baselines b JOIN runs USING (fingerprint, number) WHERE b.name = ?"
            + where.replace("WHERE", " AND") + " ORDER BY b.fingerprint, b.number", [name, *parameters])
        if not members and not self._query(BASELINE_NAMED, (name,)):
            saved = self.baseline_names()
            hint = f"baselines: {', '.join(saved)}" if saved else "save one with rebirth baseline save NAME"
            raise InputError(f"no baseline {name!r} in {self.location}; {hint}")
        profiles = {}
        for fingerprint, number in members:
            try:
                profile = self.profile_of(fingerprint, int(number))
            except InputError as error:
                (say or _to_stderr)(str(error))
                continue
            profiles[key_of(profile)] = profile
        return profiles

    def baseline_members(self) -> dict[tuple[str, int], tuple[str, ...]]:
        """The names of the baselines that hold each stored run, by (fingerprint, number)."""
        members: dict[tuple[str, int], list[str]] = {}
        for name, fingerprint, number in self._query("SELECT name, fingerprint, number FROM baselines ORDER BY name"):
            members.setdefault((fingerprint, int(number)), []).append(name)
        return {key: tuple(names) for key, names in members.items()}

    # -- integrity --------------------------------------------------------------------------------------------

    def check(self, say: Optional[Say] = None) -> list[str]:
        """Problems found: the database's own integrity check (SQLite), then every run's summary and Profile read
        (a run that cannot be read is set aside and named to ``say``). Empty when all is well."""
        problems = []
        try:
            if self.dialect is SQLITE:
                problems += [row[0] for row in self._query("PRAGMA integrity_check") if row[0] != "ok"]
            before = len(self.set_aside_runs())
            for run in self._summaries(self._query(f"SELECT {SUMMARY} FROM runs ORDER BY fingerprint, number"), say):
                try:
                    self.profile_of(run.fingerprint, run.number)
                except InputError as error:
                    if "cannot read the store" in str(error):
                        raise
                    (say or _to_stderr)(str(error))
            newly = len(self.set_aside_runs()) - before
        except InputError as error:
            return [*problems, str(error).partition("; rebirth results check")[0]]
        if newly:
            problems.append(f"{newly} run{'s' if newly != 1 else ''} could not be read: set aside")
        return problems


def _filters(device: Optional[str], model: Optional[str]) -> tuple[str, list[Any]]:
    clauses, parameters = [], []
    if device is not None:
        clauses.append("(device = ? OR fingerprint = ?)")
        parameters += [device, device]
    if model is not None:
        clauses.append("(model_key = ? OR model = ?)")
        parameters += [model, model]
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), parameters


def _nothing() -> None:
    pass


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _to_stderr(text: str) -> None:
    import sys

    print(f"rebirth: {text}", file=sys.stderr)


# -- SQLite ---------------------------------------------------------------------------------------------------


def open_sqlite(path: Path) -> DatabaseStore:
    """The SQLite store in ``path`` (made if missing), checked first if a crash left its write-ahead log behind.

    Raises:
        InputError: the file cannot be opened or is not a sound store.
    """
    location = str(path)

    def connect() -> tuple[Any, Callable[[], None]]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = _hold_lock(path)
        except OSError as error:
            raise InputError(f"{location}: cannot open the store ({error.strerror or error})") from None
        crashed = lock.alone and _left_log(path)
        try:
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = FULL")
                problems = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()
                            if row[0] != "ok"] if crashed else []
            except BaseException:
                connection.close()
                raise
        except sqlite3.DatabaseError as error:
            lock.handle.close()
            raise InputError(f"{location}: not a rebirth store, or damaged ({_first_line(error)}); rebirth results "
                             f"check --store {location} says what can be read") from None
        if problems:
            connection.close()
            lock.handle.close()
            raise InputError(f"{location}: the store is damaged ({problems[0]}); rebirth results check --store "
                             f"{location} says what can be read")
        return connection, lock.handle.close

    return DatabaseStore(location, connect, SQLITE, (sqlite3.Error,), path.exists)


@dataclass
class _Lock:
    handle: Any
    alone: bool


def _hold_lock(path: Path) -> _Lock:
    """A shared lock on ``STORE.lock`` for as long as the store is open, and whether no other rebirth process held
    it when it opened (the kernel drops a killed process's lock)."""
    handle = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115  # held open with the store
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone = True
    except BlockingIOError:
        alone = False
    fcntl.flock(handle, fcntl.LOCK_SH)
    return _Lock(handle, alone)


def _left_log(path: Path) -> bool:
    """A write-ahead log: SQLite removes it when the last connection closes cleanly."""
    return path.with_name(path.name + "-wal").exists()


# -- PostgreSQL -----------------------------------------------------------------------------------------------


def open_postgres(url: str) -> DatabaseStore:
    """The store on a PostgreSQL server (``postgresql://USER@HOST:PORT/DATABASE``; made on first use).

    Raises:
        InputError: psycopg is not installed, or the server cannot be reached or refuses.
    """
    try:
        import psycopg
    except ImportError:
        raise InputError(f"{_safe_url(url)}: a PostgreSQL store needs psycopg: "
                         "pip install 'rebirth[postgres]'") from None

    def connect() -> tuple[Any, Callable[[], None]]:
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=20), lambda: None
        except psycopg.Error as error:
            raise InputError(f"{_safe_url(url)}: cannot reach the store ({_first_line(error)})") from None

    return DatabaseStore(_safe_url(url), connect, POSTGRES, (psycopg.Error,))


def _safe_url(url: str) -> str:
    """``url`` without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
