"""The volume service (contract.py): dockerd's `local` driver over ``<data-root>/volumes``,
records in the metadata DB's `volumes` table.

Layout (as dockerd): volumes/ 0701, volumes/<name>/ 0701, volumes/<name>/_data 0755 root.
Entries starting with a dot are never volumes (no valid name can): ``.new-*`` is a volume
being created (renamed to its name in the transaction that records it), ``.trash-*`` one being
deleted (renamed away in the transaction that forgets it). Both are removed at startup.

Startup reconciles the directory with the table, as dockerd's local driver does: a directory
that holds ``_data`` but has no row is adopted (dockerd lists it too; user data is never
dropped silently), a row whose directory is gone is forgotten, and a device already mounted
on ``_data`` is known as mounted.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import errno
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import Conflict, InternalError, InvalidParameter, NotFound
from ..durable import fsync_dir
from ..events import EventBus
from ..filters import Filters
from ..metadata.db import Database
from ..mount import mounts_under
from .contract import VolumeUsers
from .lifecycle import ContainerLifecycle
from .locks import NameLocks
from .mounts import LocalMounts
from .records import (
    ANONYMOUS_LABEL,
    DATA_DIR,
    DEFAULT_DRIVER,
    Volume,
    from_row,
    quote,
    random_name,
    rfc3339,
    valid_name,
    validate_name,
    validate_options,
)
from .tree import remove_tree, size_or_unknown

log = logging.getLogger(__name__)

LIST_FILTERS = ("dangling", "name", "driver", "label")
PRUNE_FILTERS = ("label", "label!", "all")

_STAGING, _TRASH = ".new-", ".trash-"


def _go_bool(value: str) -> bool:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise InvalidParameter(f"invalid filter 'all': strconv.ParseBool: parsing {quote(value)}: "
                           "invalid syntax")


class VolumeService(ContainerLifecycle):
    def __init__(self, db: Database, events: EventBus, data_root: str,
                 users: VolumeUsers) -> None:
        self.db = db
        self.events = events
        self.root = os.path.join(data_root, "volumes")
        self.users = users  # which containers use a volume (for rm, prune, dangling, df)
        self.mounts = LocalMounts()
        self.locks = NameLocks()
        self._pruning = False
        self._startup()

    def path(self, name: str) -> str:
        return os.path.join(self.root, name, DATA_DIR)

    # -- records ---------------------------------------------------------------------------

    def _record(self, row: sqlite3.Row) -> Volume:
        return from_row(row, self.path(row["name"]))

    async def _find(self, name: str) -> Volume | None:
        row = await self.db.run(
            lambda c: c.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone())
        return self._record(row) if row is not None else None

    async def get(self, name: str) -> Volume:
        vol = await self._find(name)
        if vol is None:
            raise NotFound(f"get {name}: no such volume")
        return vol

    async def all(self) -> builtins.list[Volume]:
        rows = await self.db.run(
            lambda c: c.execute("SELECT * FROM volumes ORDER BY name").fetchall())
        return [self._record(r) for r in rows]

    # -- create ----------------------------------------------------------------------------

    async def create(self, name: str | None = None, driver: str | None = DEFAULT_DRIVER,
                     driver_opts: Mapping[str, str] | None = None,
                     labels: Mapping[str, str] | None = None, *,
                     anonymous: bool = False) -> Volume:
        """Create a volume, or return the existing one of that name."""
        vol, _ = await self.create_or_get(name, driver, driver_opts, labels, anonymous)
        return vol

    async def create_or_get(self, name: str | None, driver: str | None,
                             driver_opts: Mapping[str, str] | None,
                             labels: Mapping[str, str] | None,
                             anonymous: bool) -> tuple[Volume, bool]:
        """The volume of that name, and whether this call created it."""
        driver = driver or DEFAULT_DRIVER
        if not name:
            name, anonymous = random_name(), True
        labels_out = dict(labels) if labels is not None else None
        if anonymous:
            labels_out = {**(labels_out or {}), ANONYMOUS_LABEL: ""}
        opts = dict(driver_opts) if driver_opts is not None else None
        if driver != DEFAULT_DRIVER:
            raise NotFound(f"create {name}: error looking up volume plugin {driver}: "
                           f"plugin {quote(driver)} not found")
        async with self.locks.hold(name):
            if (existing := await self._find(name)) is not None:
                return existing, False
            try:
                validate_name(name)
                validate_options(opts or {})
            except InvalidParameter as e:
                raise InvalidParameter(f"create {name}: {e}") from None
            vol = await self._create(name, driver, opts, labels_out)
        self.events.publish("volume", "create", name, {"driver": driver})
        return vol, True

    async def _create(self, name: str, driver: str, opts: dict[str, str] | None,
                      labels: dict[str, str] | None) -> Volume:
        try:
            staging = await asyncio.to_thread(self._stage)
        except OSError as e:
            raise InternalError(f"create {name}: error while creating volume root path "
                                f"'{os.path.join(self.root, name)}': {e}") from None
        created = rfc3339(time.time())

        def record(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO volumes (name, driver, options, labels, anonymous, created)"
                         " VALUES (?, ?, ?, ?, ?, ?)",
                         (name, driver, json.dumps(opts), json.dumps(labels),
                          int(ANONYMOUS_LABEL in (labels or {})), created))
            final = os.path.join(self.root, name)
            try:
                os.rename(staging, final)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not os.path.isdir(final):
                    raise
                # A directory nobody recorded (appeared since startup): adopt it, as
                # dockerd's MkdirAll would, keeping whatever data it holds.
                os.makedirs(os.path.join(final, DATA_DIR), 0o755, exist_ok=True)
            fsync_dir(self.root)  # the directory is durable before the row naming it

        try:
            await self.db.run(record)
        except OSError as e:
            raise InternalError(f"create {name}: error while creating volume path: {e}") from None
        finally:
            await asyncio.to_thread(remove_tree, staging)
        return Volume(name, driver, self.path(name), created, labels, opts)

    def _stage(self) -> str:
        path = os.path.join(self.root, _STAGING + secrets.token_hex(8))
        os.mkdir(path, 0o701)
        os.chmod(path, 0o701)
        data = os.path.join(path, DATA_DIR)
        os.mkdir(data, 0o755)
        os.chmod(data, 0o755)
        return path

    # -- queries ---------------------------------------------------------------------------

    async def list(self, filters: Filters | None = None
                   ) -> tuple[builtins.list[Volume], builtins.list[str]]:
        """Volumes matching the filters (name, driver, label, dangling), and warnings."""
        filters = filters or Filters()
        filters.validate(LIST_FILTERS)
        dangling = filters.bool_value("dangling") if filters.contains("dangling") else None
        vols = [v for v in await self.all()
                if (not filters.get("driver") or v.driver in filters.get("driver"))
                and filters.match("name", v.name)
                and filters.match_labels(v.labels)]
        if dangling is not None:
            users = await self._users_of([v.name for v in vols])
            vols = [v for v in vols if bool(users.get(v.name)) != dangling]
        return vols, []

    async def usage(self, name: str) -> int:
        """Bytes used by the volume's data (dockerd's directory.Size), -1 if unreadable."""
        vol = await self.get(name)
        return await asyncio.to_thread(size_or_unknown, vol.mountpoint)

    async def disk_usage(self) -> builtins.list[tuple[Volume, int, int]]:
        """For `docker system df`: (volume, size, reference count) of local volumes without
        driver options (dockerd skips those: their data is not really local)."""
        vols = [v for v in await self.all() if v.driver == DEFAULT_DRIVER and not v.options]
        users = await self._users_of([v.name for v in vols])
        out = []
        for v in vols:
            size = await asyncio.to_thread(size_or_unknown, v.mountpoint)
            out.append((v, size, len(users.get(v.name, ()))))
        return out

    async def users_of(self, name: str) -> builtins.list[str]:
        return (await self._users_of([name])).get(name, [])

    async def _users_of(self, names: Sequence[str]) -> dict[str, builtins.list[str]]:
        table = self.users.volume_users(running_only=False)
        return {n: table[n] for n in names if n in table}

    # -- remove / prune --------------------------------------------------------------------

    async def remove(self, name: str, force: bool = False) -> None:
        """Remove a volume and its data. `force` only makes a missing volume no error."""
        trash = None
        async with self.locks.hold(name):
            vol = await self._find(name)
            if vol is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = await self.users_of(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            trash = await self._remove(vol)
        await asyncio.to_thread(remove_tree, trash)

    async def _remove(self, vol: Volume) -> str:
        """Forget an unused volume (caller holds its lock); returns the directory to delete."""
        name = vol.name
        await self.ensure_restored()
        if self.mounts.in_use(name):
            raise InternalError(f"remove {name}: volume has active mounts")
        if name in self.mounts.mounted:
            try:
                await self.mounts.umount(vol)
            except InternalError as e:
                raise InternalError(f"remove {name}: {e}") from None
        volume_dir = os.path.join(self.root, name)
        if nested := await asyncio.to_thread(mounts_under, volume_dir):
            raise InternalError(f"remove {name}: unable to remove a volume with mounts: "
                                + ", ".join(nested))
        trash = os.path.join(self.root, _TRASH + secrets.token_hex(8))

        def forget(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM volumes WHERE name = ?", (name,))
            with contextlib.suppress(FileNotFoundError):
                os.rename(volume_dir, trash)

        try:
            await self.db.run(forget)
        except OSError as e:
            raise InternalError(f"remove {name}: error removing volume path "
                                f"'{volume_dir}': {e}") from None
        self.mounts.forget(name)
        self.events.publish("volume", "destroy", name, {"driver": vol.driver})
        return trash

    async def prune(self, filters: Filters | None = None, *,
                    all_volumes: bool = False) -> dict[str, Any]:
        """Remove unused local volumes without driver options: anonymous ones only, unless
        the `all` filter is true (or `all_volumes`, for API < 1.42)."""
        filters = filters or Filters()
        if self._pruning:
            raise Conflict("a prune operation is already running")
        self._pruning = True
        try:
            wanted_all = sorted(filters.get("all"))
            if len(wanted_all) > 1:
                raise InvalidParameter(f"invalid filter 'all=[{' '.join(wanted_all)}]': "
                                       "only one value is expected")
            if wanted_all and _go_bool(wanted_all[0]):
                all_volumes = True
            filters.validate(PRUNE_FILTERS)
            candidates = [
                v for v in await self.all()
                if v.driver == DEFAULT_DRIVER and not v.options
                and (all_volumes or v.anonymous)
                and filters.match_labels(v.labels)
                and not (filters.contains("label!") and filters.match_labels(v.labels, "label!"))]
            deleted: builtins.list[str] = []
            reclaimed = 0
            for candidate in candidates:
                async with self.locks.hold(candidate.name):
                    vol = await self._find(candidate.name)
                    if vol is None or await self.users_of(vol.name):
                        continue
                    size = await asyncio.to_thread(size_or_unknown, vol.mountpoint)
                    try:
                        trash = await self._remove(vol)
                    except InternalError as e:
                        log.warning("prune: could not remove volume %s: %s", vol.name, e)
                        continue
                await asyncio.to_thread(remove_tree, trash)
                deleted.append(vol.name)
                reclaimed += max(size, 0)
            self.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
            return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}
        finally:
            self._pruning = False

    # -- startup ---------------------------------------------------------------------------

    def _startup(self) -> None:
        os.makedirs(self.root, 0o701, exist_ok=True)
        os.chmod(self.root, 0o701)
        entries = os.listdir(self.root)
        leftovers = [os.path.join(self.root, e) for e in entries
                     if e.startswith((_STAGING, _TRASH))]
        if leftovers:  # possibly large: never hold up the daemon's start for them
            def clean() -> None:
                for path in leftovers:
                    remove_tree(path)

            threading.Thread(target=clean, name="volume-cleanup", daemon=True).start()
        on_disk = {e for e in entries if valid_name(e)
                   and os.path.lexists(os.path.join(self.root, e, DATA_DIR))}
        rows = self.db.run_sync(lambda c: c.execute("SELECT * FROM volumes").fetchall())
        known = {r["name"] for r in rows}
        stale = sorted(known - on_disk)
        adopted = [self._adoptee(name) for name in sorted(on_disk - known)]

        def reconcile(conn: sqlite3.Connection) -> None:
            for name in stale:
                conn.execute("DELETE FROM volumes WHERE name = ?", (name,))
            conn.executemany("INSERT INTO volumes (name, driver, options, labels, anonymous,"
                             " created) VALUES (?, 'local', ?, 'null', 0, ?)", adopted)

        if stale or adopted:
            self.db.run_sync(reconcile)
        for name in stale:
            log.warning("volume %s: its directory is gone; forgetting the volume", name)
        for name, _, _ in adopted:
            log.info("volume %s: adopted a volume directory that had no record", name)
        rows = self.db.run_sync(lambda c: c.execute("SELECT * FROM volumes").fetchall())
        self.mounts.found(self._record(row) for row in rows)

    def _adoptee(self, name: str) -> tuple[str, str, str]:
        """(name, options JSON, created) for a directory without a row; reads the options
        file dockerd keeps (opts.json) so a device-backed volume stays one."""
        directory = os.path.join(self.root, name)
        opts: dict[str, str] | None = None
        try:
            with open(os.path.join(directory, "opts.json")) as f:
                saved = json.load(f)
            found = {"type": saved.get("MountType") or "", "o": saved.get("MountOpts") or "",
                     "device": saved.get("MountDevice") or ""}
            opts = {k: v for k, v in found.items() if v} or None
        except (OSError, ValueError, AttributeError):
            pass
        return name, json.dumps(opts), rfc3339(os.stat(directory).st_ctime)
