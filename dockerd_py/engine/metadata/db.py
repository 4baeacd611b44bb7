"""The metadata database: sqlite in WAL mode behind one worker thread.

The database and its WAL are 0600 (made so at every open): they hold secrets.

Every call runs one function inside one transaction on a dedicated thread, so
a multi-step change is all-or-nothing and the event loop never blocks on
sqlite. Writers are serialised by the single thread; sqlite's WAL keeps
concurrent readers from other processes (debugging tools) out of the way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sqlite3
from collections.abc import Callable
from importlib import resources
from typing import TypeVar

T = TypeVar("T")


def _make_private(path: str) -> None:
    """0600 for the database and its WAL: they hold container environments and volume
    options (passwords, tokens); an older daemon left them 0644."""
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)


class Database:
    def __init__(self, path: str) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="metadata")
        self._conn: sqlite3.Connection = self._executor.submit(self._open, path).result()

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        _make_private(path)  # sqlite gives the -wal and -shm files the database's mode
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        _make_private(path)
        # WAL + NORMAL survives a crash of the process (only power loss may drop the last commits).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(resources.files(__package__).joinpath("schema.sql").read_text())
        return conn

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(self._conn)
            self._conn.execute("COMMIT")
        except BaseException:
            # Also when COMMIT itself failed (SQLITE_FULL on a full disk): sqlite may or may
            # not have rolled back already, and a connection left inside a transaction
            # would fail every later BEGIN until a restart.
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise
        return result

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn(conn) in one transaction on the metadata thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, fn)

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Same, for callers already on a worker thread (or at startup)."""
        return self._executor.submit(self._transaction, fn).result()

    def close(self) -> None:
        def _close() -> None:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
        self._executor.submit(_close).result()
        self._executor.shutdown()
