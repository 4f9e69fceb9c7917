"""A throwaway PostgreSQL server on loopback, for the storage tests.

The server binaries come from the system (Debian's ``postgresql`` package, which
``.ci/run`` installs). Where they are absent the tests that need a server are skipped,
saying why. In CI (``CI`` set) that is a failure instead, so a missing install never
hides. As root (CI runs as root) the server runs as the ``postgres`` user, because
``initdb`` refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def throwaway_server() -> Iterator[str]:
    """Start a server, yield its SQLAlchemy URL, and remove everything afterwards."""
    bindir = _binaries()
    if bindir is None:
        reason = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the PostgreSQL tests")
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="riskopt-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chmod(root, 0o755)
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = _free_port()

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _as_server_user(list(cmd)), check=True, capture_output=True, text=True
        )

    run(str(bindir / "initdb"), "-D", str(data), "-U", "riskopt", "--auth=trust", "-E", "UTF8")
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "log"),
        "-w",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c max_connections=50",
        "start",
    )
    try:
        deadline = time.time() + 30
        while (
            subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            ).returncode
            != 0
        ):
            if time.time() > deadline:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.2)
        yield f"postgresql+psycopg://riskopt@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)
