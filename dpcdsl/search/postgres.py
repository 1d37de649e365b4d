"""A throwaway PostgreSQL server for a search's Optuna storage on one machine: the
scale benchmark and the several-drivers test start one, and so can a user trying a
shared study before pointing drivers on several machines at a real server.

    with local_server(Path("pg")) as url:   # postgresql+psycopg2://...
        search(SearchConfig(..., storage=url))

It needs PostgreSQL's server programs (Debian's ``postgresql`` package; ``initdb`` and
``pg_ctl`` on the PATH or under ``/usr/lib/postgresql/*/bin``) and the ``psycopg2``
driver (``pip install 'dpcdsl[postgres]'``). Run as root, the server runs as the
``postgres`` user, as PostgreSQL requires.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dpcdsl.errors import DpcError


def server_programs() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``, or None when PostgreSQL is missing."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_server(folder: Path, database: str = "dpcdsl") -> Iterator[str]:
    """Start a PostgreSQL server with its data in ``folder`` (created), yield the URL
    of an empty database on it, and stop the server when the block ends. Run as root,
    the server runs as the ``postgres`` user in a temporary folder of its own, removed
    afterwards."""
    bin_dir = server_programs()
    if bin_dir is None:
        raise DpcError.at(None, "PostgreSQL's server programs (initdb, pg_ctl) are not "
                          "installed", hint="apt-get install postgresql", code="DPC902")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise DpcError.at(None, "the PostgreSQL storage needs the psycopg2 driver",
                          hint="pip install 'dpcdsl[postgres]'", code="DPC902") from None
    as_root = os.geteuid() == 0
    if as_root:  # the postgres user may not reach ``folder``: a folder of its own
        folder = Path(tempfile.mkdtemp(prefix="dpcdsl-pg-"))
        shutil.chown(folder, "postgres")
    folder = Path(folder).resolve()
    data, sockets = folder / "data", folder / "run"
    sockets.mkdir(parents=True, exist_ok=True)
    if as_root:
        shutil.chown(sockets, "postgres")

    def run(*args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args] if as_root else list(args)
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=folder)
        if done.returncode != 0:
            raise DpcError.at(None, f"{Path(args[0]).name} failed (exit code "
                              f"{done.returncode}): {(done.stderr or done.stdout).strip()}",
                              code="DPC802")

    port = _free_port()
    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "dpcdsl",
        "--no-sync", "-E", "UTF8")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w",
        "-o", f"-p {port} -k {sockets} -c listen_addresses='' "
              "-c max_connections=200", "start")
    try:
        url = f"postgresql+psycopg2://dpcdsl@/{{}}?host={sockets}&port={port}"
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", user="dpcdsl", host=str(sockets),
                                port=port)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{database}"')
        conn.close()
        yield url.format(database)
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        if as_root:
            shutil.rmtree(folder, ignore_errors=True)
