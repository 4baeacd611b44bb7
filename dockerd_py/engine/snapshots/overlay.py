"""Overlayfs snapshotter: snapshots/<id>/fs (+ work/ while active).

Directories are named by a numeric id from the snapshots table, not by key,
to keep overlay mount options short. A new directory is built under a
``new-*`` name and renamed to its id inside the metadata transaction that
creates the row, and the rename is made durable (the snapshots directory is
fsynced) before that transaction commits; rows are deleted before their
directories, so a crash leaves at worst an orphan directory, which `sweep`
removes.

An id is only ever reused after a rolled-back transaction (AUTOINCREMENT hands
out the next one again), so a directory already at a new row's id belongs to
no row: a prepare that failed after its rename (a full disk failing the
COMMIT). Prepare moves such a leftover aside instead of failing on it, and a
failed prepare removes what it renamed, so one error never blocks the next.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable

from ...errors import Conflict, NotFound
from ..durable import fsync_dir
from ..leases import protect_snapshot
from ..metadata.db import Database
from .contract import Info, Mount

log = logging.getLogger(__name__)

# Past this many lower dirs, absolute paths risk the one-page limit on mount
# options; mounts then use paths relative to the snapshots root.
_RELATIVE_LOWERDIRS_AFTER = 32


def _info(row: sqlite3.Row) -> Info:
    return Info(row["id"], row["name"], row["parent"], row["kind"], row["size"], row["created"])


def _get(conn: sqlite3.Connection, name: str) -> Info | None:
    row = conn.execute("SELECT * FROM snapshots WHERE name = ?", (name,)).fetchone()
    return _info(row) if row else None


class OverlaySnapshotter:
    def __init__(self, root: str, db: Database) -> None:
        self.root = root
        self._db = db
        os.makedirs(root, exist_ok=True)
        # As dockerd's overlay2/: only root traverses to the layers (an older daemon left
        # it 0755, and containers' upper dirs hold what they write).
        os.chmod(root, 0o710)

    def fs_dir(self, info: Info) -> str:
        return os.path.join(self.root, str(info.id), "fs")

    async def stat(self, name: str) -> Info | None:
        return await self._db.run(lambda c: _get(c, name))

    async def prepare(self, key: str, parent: str = "") -> Info:
        protect_snapshot(key)
        staging = await asyncio.to_thread(self._make_staging, True)
        moved: list[str] = []  # where staging went, and any leftover moved aside

        def create(conn: sqlite3.Connection) -> Info:
            if _get(conn, key) is not None:
                raise Conflict(f"snapshot {key}: already exists")
            cur = conn.execute(
                "INSERT INTO snapshots(name, parent, kind, created) VALUES (?, ?, 'active', ?)",
                (key, parent, time.time()))
            final = os.path.join(self.root, str(cur.lastrowid))
            self._place(staging, final, moved)
            # Durable before the row that names it: one fsync covers the rename and the
            # directories made in staging (journaled file systems order directory updates).
            fsync_dir(self.root)
            return _get(conn, key)  # type: ignore[return-value]

        try:
            info = await self._db.run(create)
        except BaseException:
            # Explicit rollback: the row went with the transaction; its directory goes too.
            await asyncio.to_thread(self._discard, staging, *moved)
            raise
        if len(moved) > 1:
            await asyncio.to_thread(self._discard, *moved[1:])
        return info

    def _place(self, staging: str, final: str, moved: list[str]) -> None:
        try:
            os.rename(staging, final)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            # Left by a prepare whose transaction failed after its rename: no row owns it.
            aside = tempfile.mkdtemp(prefix="gone-", dir=self.root)
            os.rename(final, os.path.join(aside, "leftover"))
            os.rename(staging, final)
            moved.append(final)
            moved.append(aside)
            return
        moved.append(final)

    @staticmethod
    def _discard(*paths: str) -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)

    def _make_staging(self, active: bool) -> str:
        path = tempfile.mkdtemp(prefix="new-", dir=self.root)
        try:
            fs = os.path.join(path, "fs")
            os.mkdir(fs)
            os.chmod(fs, 0o755)  # the root directory containers see, whatever the umask
            if active:
                os.mkdir(os.path.join(path, "work"), 0o700)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return path

    async def commit(self, name: str, key: str, size: int) -> Info:
        """Commit active `key` as `name`. If `name` already exists (another
        unpack won the race), the active snapshot is dropped and the existing
        one returned."""
        protect_snapshot(name)

        def commit(conn: sqlite3.Connection) -> tuple[Info, Info | None]:
            active = _get(conn, key)
            if active is None or active.kind != "active":
                raise NotFound(f"snapshot {key}: not found")
            existing = _get(conn, name)
            if existing is not None:
                conn.execute("DELETE FROM snapshots WHERE id = ?", (active.id,))
                return existing, active
            conn.execute("UPDATE snapshots SET name = ?, kind = 'committed', size = ? WHERE id = ?",
                         (name, size, active.id))
            return _get(conn, name), None  # type: ignore[return-value]

        info, dropped = await self._db.run(commit)
        if dropped is not None:
            await asyncio.to_thread(self._remove_dir, dropped.id)
        else:
            work = os.path.join(self.root, str(info.id), "work")
            await asyncio.to_thread(shutil.rmtree, work, True)
        return info

    async def remove(self, name: str) -> None:
        def remove(conn: sqlite3.Connection) -> Info:
            info = _get(conn, name)
            if info is None:
                raise NotFound(f"snapshot {name}: not found")
            if conn.execute("SELECT 1 FROM snapshots WHERE parent = ? LIMIT 1", (name,)).fetchone():
                raise Conflict(f"snapshot {name}: has children")
            conn.execute("DELETE FROM snapshots WHERE id = ?", (info.id,))
            return info

        info = await self._db.run(remove)
        await asyncio.to_thread(self._remove_dir, info.id)

    async def abort(self, key: str) -> None:
        """Drop an active snapshot whose filling failed: its directory first (it may hold
        what filled the disk, and the row's deletion needs space in the WAL), then its
        row. A row left by a still-full disk names a snapshot no lease protects any
        more: the next collection removes it. Never raises for a missing snapshot."""
        info = await self.stat(key)
        if info is None or info.kind != "active":
            return
        await asyncio.to_thread(self._remove_dir, info.id)
        try:
            await self.remove(key)
        except (NotFound, sqlite3.Error, OSError) as e:
            log.warning("snapshot %s: row left for the collector: %s", key, e)

    def _remove_dir(self, snapshot_id: int) -> None:
        shutil.rmtree(os.path.join(self.root, str(snapshot_id)), ignore_errors=True)

    async def chain(self, name: str) -> list[Info]:
        """The snapshot and its ancestors, nearest first."""
        def walk(conn: sqlite3.Connection) -> list[Info]:
            out: list[Info] = []
            current = name
            while current:
                info = _get(conn, current)
                if info is None:
                    raise NotFound(f"snapshot {current}: not found")
                out.append(info)
                current = info.parent
            return out
        return await self._db.run(walk)

    async def mounts(self, key: str) -> list[Mount]:
        chain = await self.chain(key)
        top, parents = chain[0], chain[1:]
        if top.kind == "committed":  # a read-only view
            if len(parents) == 0:
                return [Mount("bind", self.fs_dir(top), ("ro", "rbind"))]
            parents = chain
            upper: tuple[str, ...] = ()
        else:
            base = os.path.join(self.root, str(top.id))
            if not parents:
                return [Mount("bind", os.path.join(base, "fs"), ("rw", "rbind"))]
            upper = (f"upperdir={base}/fs", f"workdir={base}/work")
        if len(parents) > _RELATIVE_LOWERDIRS_AFTER:
            lower = ":".join(f"{p.id}/fs" for p in parents)  # caller mounts with cwd=self.root
        else:
            lower = ":".join(self.fs_dir(p) for p in parents)
        return [Mount("overlay", "overlay", (*upper, f"lowerdir={lower}", "index=off"))]

    async def list(self) -> list[Info]:
        return await self._db.run(
            lambda c: [_info(r) for r in c.execute("SELECT * FROM snapshots ORDER BY id")])

    async def sweep(self, keep: Iterable[str], *, startup: bool = False,
                    leased: Callable[[], Iterable[str]] = tuple) -> builtins.list[Info]:
        """Garbage collection: delete every snapshot not named in `keep` (the
        marked set, which must be closed under parents) nor in `leased()` (asked
        here, in the deleting transaction, and closed under parents here), then
        directories without a row. Staging directories of prepares in flight are
        only touched at startup. Returns the removed snapshots."""
        marked = set(keep)

        def delete(conn: sqlite3.Connection) -> tuple[list[Info], set[int], int]:
            rows = [_info(r) for r in conn.execute("SELECT * FROM snapshots")]
            parents = {i.name: i.parent for i in rows}
            keep = set(marked)
            for name in leased():
                while name and name not in keep:
                    keep.add(name)
                    name = parents.get(name, "")
            gone = [i for i in rows if i.name not in keep]
            conn.executemany("DELETE FROM snapshots WHERE id = ?", [(i.id,) for i in gone])
            seq = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'snapshots'").fetchone()
            return gone, {i.id for i in rows if i.name in keep}, seq[0] if seq else 0

        gone, live_ids, max_id = await self._db.run(delete)
        await asyncio.to_thread(self._remove_orphan_dirs, live_ids, max_id, startup)
        return gone

    def _remove_orphan_dirs(self, live_ids: set[int], max_id: int, startup: bool) -> None:
        for entry in os.listdir(self.root):
            if entry.isdigit():
                orphan = int(entry) not in live_ids and (startup or int(entry) <= max_id)
            else:
                orphan = startup
            if orphan:
                shutil.rmtree(os.path.join(self.root, entry), ignore_errors=True)
