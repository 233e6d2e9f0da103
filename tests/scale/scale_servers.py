"""Real Redis and PostgreSQL servers for the scale-out tests, started on free loopback ports in
temporary directories, stopped (and restarted on the same port) at will.

A missing binary skips the test with the reason, except under CI (``CI=true``, which
``.ci/run`` sets and where it installs both): there it fails.
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
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "RedisServer", "free_port", "need_binary"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def need_binary(name: str, *extra_dirs: str) -> str:
    """The path of executable ``name`` (on ``PATH`` or in ``extra_dirs``); skips the test
    when it is missing, or fails it under CI."""
    found = shutil.which(name)
    for pattern in extra_dirs:
        if found:
            break
        found = next((p for p in sorted(glob.glob(os.path.join(pattern, name))) if p), None)
    if found:
        return found
    reason = f"{name} is not installed (apt-get install redis-server postgresql)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout} s")


class RedisServer:
    """A ``redis-server`` on a free loopback port, no persistence."""

    def __init__(self, root: Path) -> None:
        self.binary = need_binary("redis-server")
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again, on the same port)."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        """Kill it (as a crash would): its data is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


_PG_DIRS = ("/usr/lib/postgresql/*/bin",)


class PostgresServer:
    """A PostgreSQL cluster made by ``initdb`` in ``root``, trust auth, user ``voicehost``,
    on a free loopback port. As root, it runs as the ``postgres`` user (else ``nobody``)."""

    def __init__(self, root: Path) -> None:
        self.initdb = need_binary("initdb", *_PG_DIRS)
        self.postgres = need_binary("postgres", *_PG_DIRS)
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._prefix: list[str] = []
        self._own_root = False
        if os.geteuid() == 0:
            user = "postgres"
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                user, entry = "nobody", pwd.getpwnam("nobody")
            # pytest's temporary directories are root's alone (0700): use one it can reach
            root = Path(tempfile.mkdtemp(prefix="voicehost-pg-"))
            os.chown(root, entry.pw_uid, entry.pw_gid)
            self.root, self.data, self._own_root = root, root / "data", True
            self._prefix = [
                "setpriv",
                f"--reuid={user}",
                f"--regid={entry.pw_gid}",
                "--clear-groups",
            ]
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *self._prefix,
                self.initdb,
                "-D",
                str(self.data),
                "-U",
                "voicehost",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def url(self, dbname: str = "postgres") -> str:
        """``postgresql://voicehost@127.0.0.1:<port>/<dbname>``."""
        return f"postgresql://voicehost@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """Start it (again, on the same port; the data stays)."""
        self.proc = subprocess.Popen(
            [
                *self._prefix,
                self.postgres,
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc, "postgres")
        deadline = time.monotonic() + 30
        while True:  # listening is not yet accepting connections
            try:
                self.execute("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop it at once (fast shutdown: sessions are cut)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def remove(self) -> None:
        """Stop it and delete its files (a directory made outside pytest's)."""
        self.stop()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run one statement in autocommit mode."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=2) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
