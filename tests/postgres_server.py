"""A real PostgreSQL server for tests: Debian's postgresql 15 binaries (`initdb`, `pg_ctl`), a
throwaway cluster in a temporary folder, listening on 127.0.0.1 and a free port only.

PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user and the
commands run through `runuser`; as anyone else, directly. Tests skip when the binaries are not
installed (`apt-get install postgresql-15`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BIN = Path(os.environ.get("PRELABEL_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a DSN for a fresh, empty server; stop it and remove its files afterwards."""
    if not (BIN / "initdb").is_file():
        pytest.skip(f"PostgreSQL binaries not found in {BIN} (apt-get install postgresql-15)")
    root = Path(tempfile.mkdtemp(prefix="prelabel-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)

    try:
        run(str(BIN / "initdb"), "-D", str(data), "-U", "prelabel", "--auth=trust", "-E", "UTF8")
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(
            str(BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"
        )
        try:
            yield f"host=127.0.0.1 port={port} user=prelabel dbname=postgres"
        finally:
            run(str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
