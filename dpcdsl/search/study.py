"""Where a search's state lives: the Optuna study's name, its storage, and which trials
count against the budget. The driver, the report and re-ranking all read it."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from dpcdsl.errors import DpcError

#: the study's name in its storage
STUDY = "dpcdsl"


def storage_url(run_dir: Path, storage: str | None) -> str:
    """The storage URL given, or SQLite in the run folder."""
    return storage or f"sqlite:///{(run_dir / 'study.db').resolve()}"


#: the scheme of Optuna's journal storage: an append-only log file (``journal:PATH``)
JOURNAL = "journal:"
#: the file of a run folder that names the storage of a search kept elsewhere
STORAGE_FILE = "storage.txt"
_HIDDEN = "***"


def record_storage(run_dir: Path, storage: str | None) -> None:
    """Name the search's storage in its run folder, so that ``report`` and ``rerank``
    find it with no option: a journal's path made absolute, a database URL without
    its password (which is asked for again, never written down)."""
    if storage is None:
        return
    if storage.startswith(JOURNAL):
        path = Path(storage[len(JOURNAL):].removeprefix("//"))
        text = JOURNAL + str(path.resolve())
    else:
        text = _without_password(storage)
    (run_dir / STORAGE_FILE).write_text(text + "\n")


def _without_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # not a URL sqlalchemy reads: kept as it was given  # noqa: BLE001
        return url
    return parsed.render_as_string(hide_password=True).replace(":***@", f":{_HIDDEN}@") \
        if parsed.password else url


def find_storage(run_dir: Path, storage: str | None) -> str | None:
    """The storage of the search in ``run_dir``: ``storage`` when given, else the one
    its folder names, else its ``study.db`` (None); a folder with neither is an error."""
    if storage is not None:
        return storage
    named = run_dir / STORAGE_FILE
    if named.is_file():
        url = named.read_text().strip()
        if f":{_HIDDEN}@" in url:
            raise DpcError.at(None, f"the search in {run_dir} is kept in {url}",
                              hint="give --storage with that URL and its password", code="DPC802")
        return url
    if not (run_dir / "study.db").exists():
        raise DpcError.at(None, f"{run_dir} holds no search: no study.db, and no "
                          f"{STORAGE_FILE} naming another storage",
                          hint="give the run folder of a search, or --storage URL", code="DPC802")
    return None


def open_storage(run_dir: Path, storage: str | None) -> optuna.storages.BaseStorage:
    """The search's Optuna storage, or a clear error naming the URL when it cannot be
    opened (an unknown scheme, an unreachable server, a file that is not a database).
    ``journal:PATH`` is Optuna's journal storage in the file PATH (relative to the
    working directory); any other URL is a database (SQLite, PostgreSQL, MySQL)."""
    url = storage_url(run_dir, storage)
    try:
        if url.startswith(JOURNAL):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len(JOURNAL):].removeprefix("//"))
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        return _database(url)
    except Exception as e:  # sqlalchemy's and the drivers' errors have no common base
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DpcError.at(None, f"cannot open the Optuna storage {url}: {first}",
                          hint="a database URL such as sqlite:///runs/x/study.db or "
                               "postgresql://user@host/db, or journal:runs/x/journal.log; "
                               "without --storage the run folder's study.db is used", code="DPC802"
                          ) from None


#: what a database answers when another process created the study tables at the same
#: moment (SQLite, PostgreSQL, MySQL), or held SQLite's lock while it did: the tables
#: are there, or will be, so opening again succeeds
_SCHEMA_RACE = ("already exists", "unique constraint failed", "duplicate key",
                "duplicate entry", "database is locked")


def _database(url: str, attempts: int = 5) -> optuna.storages.BaseStorage:
    """Optuna's RDB storage for ``url`` (cached, as Optuna's own choice). Opening a new
    database creates its tables; two processes doing so at once (drivers starting
    together, or a report read while a search starts) make one fail, so that one opens
    it again."""
    def open_once() -> optuna.storages.BaseStorage:
        return optuna.storages.get_storage(_sqlite(url) if url.startswith("sqlite:") else url)

    for attempt in range(1, attempts):
        try:
            return open_once()
        except Exception as e:
            if not _schema_race(e):
                raise
            time.sleep(0.2 * attempt)
    return open_once()


def _schema_race(e: BaseException | None) -> bool:
    """Is ``e``, or an error it was raised from, a race on a new database's tables?
    Optuna wraps the database's error in its own (StorageInternalError: "An exception
    is raised during the commit"), so the causes are read too."""
    for _ in range(8):  # a chain is short; this bounds a cycle
        if e is None:
            return False
        if any(m in str(e).lower() for m in _SCHEMA_RACE):
            return True
        e = e.__cause__ or e.__context__
    return False


def _sqlite(url: str) -> optuna.storages.RDBStorage:
    """A SQLite storage in write-ahead-log mode, each commit written to the log without
    waiting for the disk (``synchronous = NORMAL``): half the time per trial of
    SQLite's default, and as safe against a killed driver (only a power cut may lose
    the last trials told). The log needs the file on a local disk, as SQLite does for
    several processes anyway; drivers on several machines share PostgreSQL instead."""
    from sqlalchemy import event

    storage = optuna.storages.RDBStorage(url)

    def pragmas(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # the connections opened before the pragmas
    return storage


def counted(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial uses up budget: finished, pruned, or failed with a reason (an
    interrupted trial is run again instead)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and "failure" in trial.user_attrs


def driver_tag() -> dict[str, object]:
    """Who runs a trial: this machine and process. Each trial records it, so that a
    driver resuming a study on a shared storage leaves other live drivers' trials be."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


#: a running trial that names no driver is taken for an interrupted one only after this
#: long: a driver names itself right after it takes a queued trial (a re-run)
UNTAGGED_S = 60.0


def orphaned(trial: optuna.trial.FrozenTrial) -> bool | None:
    """Whether a RUNNING trial's driver is gone: True when it ran on this machine in a
    process that no longer exists (or recorded no driver for :data:`UNTAGGED_S`),
    False when that process is alive, None when it ran on another machine, whose
    processes cannot be seen (or when it was taken less than :data:`UNTAGGED_S` ago and
    names no driver yet)."""
    owner = trial.user_attrs.get("driver")
    if not isinstance(owner, dict) or "pid" not in owner:
        start = trial.datetime_start
        if start is not None and \
                (datetime.now(start.tzinfo) - start).total_seconds() < UNTAGGED_S:
            return None
        return True
    if owner.get("host") != socket.gethostname():
        return None
    pid = int(owner["pid"])  # type: ignore[call-overload]
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


#: the run folder's lock file: held by the driver for the whole search
LOCK = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder for one driver. A second driver on the same folder gets an
    error that names the first, instead of two drivers telling the same trials (the
    lock is the kernel's, so a killed driver releases it)."""

    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    path = run_dir / LOCK
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise DpcError.at(None, f"{run_dir} is in use by a running search ({holder})",
                              hint="wait for it to end, or stop it; then --resume",
                              code="DPC802") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
