"""Volumes: dockerd's `local` driver over ``<data-root>/volumes``, records in the metadata DB.

Lifecycle, as the container service uses it::

    create(name?)            a row + volumes/<name>/_data. No name: a random 64-hex name and
                             the label com.docker.volume.anonymous (what prune keys on).
                             An existing name is returned as it is (dockerd does not compare
                             options or labels).
    mount(name, container)   returns the host path to bind into the container. A volume
                             created with type/device options has its device mounted on _data
                             for the first container and unmounted after the last one
                             (reference counted by container id); plain volumes only count.
    populate(name, source)   copy an image directory into the volume if the volume is empty.
    unmount(name, container) the container stopped using it.
    remove(name)             refused while `users(name)` (set by the container service) is
                             non-empty, even when forced — as dockerd.

Layout (as dockerd): volumes/ 0701, volumes/<name>/ 0701, volumes/<name>/_data 0755 root.
Entries starting with a dot are never volumes (no valid name can): ``.new-*`` is a volume
being created (renamed to its name in the transaction that records it), ``.trash-*`` one being
deleted (renamed away in the transaction that forgets it). Both are removed at startup.

Startup reconciles the directory with the table, as dockerd's local driver does: a directory
that holds ``_data`` but has no row is adopted (dockerd lists it too; user data is never
dropped silently), a row whose directory is gone is forgotten, and a device already mounted
on ``_data`` is known as mounted. Which containers hold mounts is recomputed from the
containers table (running containers' ``mounts``) before the first mount-related call, or
set explicitly with `restore()`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime
import errno
import inspect
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict, DaemonError, InternalError, InvalidParameter, NotFound
from .events import EventBus
from .filters import Filters
from .metadata.db import Database

log = logging.getLogger(__name__)

DEFAULT_DRIVER = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
DATA_DIR = "_data"
LIST_FILTERS = ("dangling", "name", "driver", "label")
PRUNE_FILTERS = ("label", "label!", "all")

_VALID_OPTS = ("type", "o", "device", "size")
_REQUIRED_OPTS = (("device", ("type",)), ("type", ("device",)), ("o", ("device", "type")))
_STAGING, _TRASH = ".new-", ".trash-"

# Who uses a volume: container ids. Set by the container service; sync or async.
UsersHook = Callable[[str], Sequence[str] | Awaitable[Sequence[str]]]


@dataclass(frozen=True)
class Volume:
    name: str
    driver: str
    mountpoint: str                   # <data-root>/volumes/<name>/_data
    created_at: str                   # RFC 3339, seconds, local offset ("Z" in UTC)
    labels: dict[str, str] | None     # None and {} are kept apart, as dockerd does
    options: dict[str, str] | None
    scope: str = "local"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in (self.labels or {})

    @property
    def needs_mount(self) -> bool:
        opts = self.options or {}
        return bool(opts.get("device") or opts.get("type"))


def valid_name(name: str) -> bool:
    return re.fullmatch(NAME_CHARS + "+", name) is not None


def validate_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidParameter("volume name is too short, names should be at least two "
                               "alphanumeric characters")
    if not valid_name(name):
        raise InvalidParameter(
            f"{_quote(name)} includes invalid characters for a local volume name, only "
            f"{_quote(NAME_CHARS)} are allowed. If you intended to pass a host directory, "
            "use absolute path")


def validate_options(opts: Mapping[str, str]) -> None:
    """The local driver's checks (moby volume/local/local_unix.go validateOpts)."""
    for key in opts:
        if key not in _VALID_OPTS:
            raise InvalidParameter(f"invalid option: {_quote(key)}")
    if opts.get("type") == "cifs" and opts.get("device"):
        try:
            port = urllib.parse.urlsplit(opts["device"]).port
        except ValueError as e:
            raise InvalidParameter(f"error parsing mount device url: {e}") from None
        if port is not None:
            raise InvalidParameter("port not allowed in CIFS device URL, include 'port' in 'o='")
    if "size" in opts and ram_in_bytes(opts["size"]) > 0:
        raise InvalidParameter("quota size requested but no quota support")
    for key, needed in _REQUIRED_OPTS:
        if key in opts:
            for other in needed:
                if other not in opts:
                    raise InvalidParameter(f"missing required option: {_quote(other)}")


_SIZE = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")


def ram_in_bytes(value: str) -> int:
    """go-units RAMInBytes: "10m", "1.5GiB", "512" (binary multiples)."""
    m = _SIZE.fullmatch(value)
    try:
        if m is None:
            raise ValueError
        number = float(m.group(1))
    except ValueError:
        raise InvalidParameter(f"invalid size: '{value}'") from None
    unit = 1024 ** " kmgtp".index((m.group(2) or " ").lower())
    return int(number * unit)


def _quote(s: str) -> str:
    """Go's %q for the strings we quote (printable text)."""
    return json.dumps(s, ensure_ascii=False)


def rfc3339(ts: float) -> str:
    """Go's time.RFC3339 in local time: seconds, "Z" for UTC, else the offset."""
    text = datetime.datetime.fromtimestamp(int(ts)).astimezone().isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def random_name() -> str:
    while True:  # as moby's stringid: a short form that looks like a number is avoided
        name = secrets.token_hex(32)
        if not name[:12].isdigit():
            return name


def _go_bool(value: str) -> bool:
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise InvalidParameter(f"invalid filter 'all': strconv.ParseBool: parsing {_quote(value)}: "
                           "invalid syntax")


def _loads(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    value = json.loads(text)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None


class _NameLocks:
    """One asyncio lock per volume name, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(name, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


class VolumeService:
    def __init__(self, db: Database, events: EventBus, data_root: str) -> None:
        self.db = db
        self.events = events
        self.root = os.path.join(data_root, "volumes")
        # Container ids using a volume (for rm, prune, dangling, df). None: read the containers
        # table (mount points of Type "volume", by Name), which the container service fills.
        self.users: UsersHook | None = None
        self._refs: dict[str, set[str]] = {}   # volume -> containers holding its device mount
        self._mounted: set[str] = set()         # volumes whose device is mounted on _data
        self._restored = False
        self._restore_lock = asyncio.Lock()
        self._locks = _NameLocks()
        self._pruning = False
        self._startup()

    def path(self, name: str) -> str:
        return os.path.join(self.root, name, DATA_DIR)

    # -- records ---------------------------------------------------------------------------

    def _record(self, row: sqlite3.Row) -> Volume:
        return Volume(name=row["name"], driver=row["driver"], mountpoint=self.path(row["name"]),
                      created_at=row["created"], labels=_loads(row["labels"]),
                      options=_loads(row["options"]))

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
        vol, _ = await self._create_or_get(name, driver, driver_opts, labels, anonymous)
        return vol

    async def _create_or_get(self, name: str | None, driver: str | None,
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
                           f"plugin {_quote(driver)} not found")
        async with self._locks.hold(name):
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

        try:
            await self.db.run(record)
        except OSError as e:
            raise InternalError(f"create {name}: error while creating volume path: {e}") from None
        finally:
            await asyncio.to_thread(_remove_tree, staging)
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
        return await asyncio.to_thread(_size_or_unknown, vol.mountpoint)

    async def disk_usage(self) -> builtins.list[tuple[Volume, int, int]]:
        """For `docker system df`: (volume, size, reference count) of local volumes without
        driver options (dockerd skips those: their data is not really local)."""
        vols = [v for v in await self.all() if v.driver == DEFAULT_DRIVER and not v.options]
        users = await self._users_of([v.name for v in vols])
        out = []
        for v in vols:
            size = await asyncio.to_thread(_size_or_unknown, v.mountpoint)
            out.append((v, size, len(users.get(v.name, ()))))
        return out

    async def users_of(self, name: str) -> builtins.list[str]:
        return (await self._users_of([name])).get(name, [])

    async def _users_of(self, names: Sequence[str]) -> dict[str, builtins.list[str]]:
        if self.users is None:
            table = await self.db.run(_table_users)
            return {n: table[n] for n in names if n in table}
        out = {}
        for name in names:
            found = self.users(name)
            if inspect.isawaitable(found):
                found = await found
            if found:
                out[name] = list(found)
        return out

    # -- remove / prune --------------------------------------------------------------------

    async def remove(self, name: str, force: bool = False) -> None:
        """Remove a volume and its data. `force` only makes a missing volume no error."""
        trash = None
        async with self._locks.hold(name):
            vol = await self._find(name)
            if vol is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = await self.users_of(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            trash = await self._remove(vol)
        await asyncio.to_thread(_remove_tree, trash)

    async def _remove(self, vol: Volume) -> str:
        """Forget an unused volume (caller holds its lock); returns the directory to delete."""
        name = vol.name
        await self._ensure_restored()
        if self._refs.get(name):
            raise InternalError(f"remove {name}: volume has active mounts")
        if name in self._mounted:
            try:
                await self._umount(vol)
            except InternalError as e:
                raise InternalError(f"remove {name}: {e}") from None
        volume_dir = os.path.join(self.root, name)
        if nested := await asyncio.to_thread(_mounts_under, volume_dir):
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
        self._refs.pop(name, None)
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
                async with self._locks.hold(candidate.name):
                    vol = await self._find(candidate.name)
                    if vol is None or await self.users_of(vol.name):
                        continue
                    size = await asyncio.to_thread(_size_or_unknown, vol.mountpoint)
                    try:
                        trash = await self._remove(vol)
                    except InternalError as e:
                        log.warning("prune: could not remove volume %s: %s", vol.name, e)
                        continue
                await asyncio.to_thread(_remove_tree, trash)
                deleted.append(vol.name)
                reclaimed += max(size, 0)
            self.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
            return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}
        finally:
            self._pruning = False

    # -- mounts ----------------------------------------------------------------------------

    async def mount(self, name: str, container_id: str, *, destination: str = "",
                    rw: bool = True, propagation: str = "") -> str:
        """The container starts using the volume: mount its device if it has one and this is
        the first user. Returns the host path to bind. Emits the `mount` event."""
        async with self._locks.hold(name):
            vol = await self.get(name)
            await self._ensure_restored()
            if vol.needs_mount:
                if name not in self._mounted:
                    await self._mount(vol)
                self._refs.setdefault(name, set()).add(container_id)
        self.events.publish("volume", "mount", name, {
            "driver": vol.driver, "container": container_id, "destination": destination,
            "read/write": "true" if rw else "false", "propagation": propagation})
        return vol.mountpoint

    async def unmount(self, name: str, container_id: str) -> None:
        """The container stopped using the volume: unmount its device after the last user.
        Emits the `unmount` event."""
        async with self._locks.hold(name):
            vol = await self.get(name)
            await self._ensure_restored()
            if vol.needs_mount:
                refs = self._refs.get(name, set())
                refs.discard(container_id)
                if not refs:
                    self._refs.pop(name, None)
                    if name in self._mounted:
                        await self._umount(vol)
        self.events.publish("volume", "unmount", name,
                            {"driver": vol.driver, "container": container_id})

    async def restore(self, refs: Mapping[str, Iterable[str]] | None = None) -> None:
        """Set which containers hold each volume's device mount after a daemon restart
        (live-restored running containers). None: read them from the containers table."""
        async with self._restore_lock:
            if refs is None:
                refs = await self.db.run(_running_users)
            self._refs = {name: set(ids) for name, ids in refs.items() if ids}
            self._restored = True

    async def _ensure_restored(self) -> None:
        if not self._restored:
            await self.restore()

    async def _mount(self, vol: Volume) -> None:
        opts = vol.options or {}
        device, mount_opts = await asyncio.to_thread(_mount_source, opts)
        argv = ["mount", "-i"]
        if opts.get("type"):
            argv += ["-t", opts["type"]]
        if mount_opts:
            argv += ["-o", mount_opts]
        argv += ["--", device, vol.mountpoint]
        code, output = await _run(argv)
        if code != 0:
            if password := _option(opts.get("o", ""), "password"):
                output = output.replace("password=" + password, "password=********")
            raise InternalError(f"failed to mount local volume: {output.strip() or argv[0]}")
        self._mounted.add(vol.name)

    async def _umount(self, vol: Volume) -> None:
        code, output = await _run(["umount", "-i", "--", vol.mountpoint])
        if code != 0 and await asyncio.to_thread(_is_mount_point, vol.mountpoint):
            raise InternalError(f"failed to unmount local volume: {output.strip()}")
        self._mounted.discard(vol.name)

    # -- populate --------------------------------------------------------------------------

    async def populate(self, name: str, source_dir: str) -> bool:
        """Copy `source_dir` (a directory of the container's image) into the volume if the
        volume is empty, preserving owners, modes, times, xattrs, symlinks, hard links and
        device nodes; the volume's root takes the source directory's owner and mode, as
        dockerd does. Returns whether anything was copied.

        Call it after `mount()`: for a device-backed volume that is not mounted, the device
        is mounted just for the copy (useless for tmpfs, whose content then goes away)."""
        async with self._locks.hold(name):
            vol = await self.get(name)
            await self._ensure_restored()
            temporary = vol.needs_mount and name not in self._mounted
            if temporary:
                await self._mount(vol)
            try:
                return await asyncio.to_thread(copy_into_empty, source_dir, vol.mountpoint)
            except OSError as e:
                raise InternalError(f"populate volume {name} from {source_dir}: {e}") from None
            finally:
                if temporary:
                    await self._umount(vol)

    # -- container glue (the call sites in containers/service.py) --------------------------

    async def attach_point(self, container_id: str, point: dict[str, Any]
                           ) -> tuple[dict[str, Any], bool]:
        """At container create: the volume a mount point names (created if missing; an
        anonymous one when it has no name), recorded in the point as Name/Source/Driver;
        and whether it was created here (a failed create removes it again)."""
        name = point.get("Name") or None
        vol, created = await self._create_or_get(
            name, point.get("Driver") or DEFAULT_DRIVER, None, point.get("Labels") or None,
            anonymous=name is None)
        return {**point, "Name": vol.name, "Source": vol.mountpoint,
                "Driver": vol.driver}, created

    async def discard_created(self, names: Iterable[str]) -> None:
        """Undo the volumes a failed container create made; best effort, as the create's
        own error is what the client must see."""
        for name in names:
            try:
                await self.remove(name)
            except DaemonError as e:
                log.warning("removing volume %s of a failed create: %s", name, e)

    async def before_start(self, container: Any) -> None:
        """At container start: mount every volume of the container (events as dockerd)."""
        done: builtins.list[str] = []
        try:
            for p in _volume_points(container):
                await self.mount(p["Name"], container.id, destination=p.get("Destination", ""),
                                 rw=bool(p.get("RW", True)),
                                 propagation=p.get("Propagation") or "")
                done.append(p["Name"])
        except BaseException:
            for name in done:
                with contextlib.suppress(Exception):
                    await self.unmount(name, container.id)
            raise

    async def detach_container(self, container: Any, *, remove_anonymous: bool = False) -> None:
        """At container removal (its row already gone): release its mounts and, for
        `rm -v`, remove its anonymous volumes unless another container uses them."""
        for p in _volume_points(container):
            name = p["Name"]
            with contextlib.suppress(NotFound):
                if container.id in self._refs.get(name, ()):
                    await self.unmount(name, container.id)
                if remove_anonymous and (await self.get(name)).anonymous:
                    try:
                        await self.remove(name)
                    except Conflict:
                        pass  # still used by another container: not an error (as dockerd)
                    except InternalError as e:
                        log.warning("removing volume %s of container %s: %s", name,
                                    container.id, e)

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
                    _remove_tree(path)

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
        mounted = _mount_points()
        for row in self.db.run_sync(lambda c: c.execute("SELECT * FROM volumes").fetchall()):
            vol = self._record(row)
            if vol.needs_mount and vol.mountpoint in mounted:
                self._mounted.add(vol.name)

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


# -- containers table (default users; restore) ----------------------------------------------


def _volume_points(container: Any) -> list[dict[str, Any]]:
    return [p for p in getattr(container, "mounts", None) or []
            if isinstance(p, dict) and p.get("Type") == "volume" and p.get("Name")]


def _container_volumes(conn: sqlite3.Connection, running_only: bool) -> dict[str, list[str]]:
    """Volume name -> ids of containers whose mount points (Docker's MountPoint shape:
    {"Type": "volume", "Name": ...}) name it, in creation order."""
    out: dict[str, list[str]] = {}
    for row in conn.execute("SELECT id, mounts, state FROM containers ORDER BY seq"):
        try:
            mounts = json.loads(row["mounts"])
            state = json.loads(row["state"]) if running_only else {}
        except (TypeError, ValueError):
            continue
        if running_only and not (isinstance(state, dict) and (
                state.get("Running") is True
                or (state.get("status") or state.get("Status"))
                in ("running", "paused", "restarting"))):
            continue
        for m in mounts if isinstance(mounts, list) else ():
            if isinstance(m, dict) and m.get("Type") == "volume" and m.get("Name"):
                ids = out.setdefault(str(m["Name"]), [])
                if row["id"] not in ids:
                    ids.append(row["id"])
    return out


def _table_users(conn: sqlite3.Connection) -> dict[str, list[str]]:
    return _container_volumes(conn, running_only=False)


def _running_users(conn: sqlite3.Connection) -> dict[str, list[str]]:
    return _container_volumes(conn, running_only=True)


# -- mounting helpers ------------------------------------------------------------------------


async def _run(argv: list[str]) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
    except OSError as e:
        return 127, f"{argv[0]}: {e}"
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


def _option(opts: str, key: str) -> str:
    for item in opts.split(","):
        if item.startswith(key + "="):
            return item[len(key) + 1:]
    return ""


def _is_ipv4(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return False
    return True


def _resolve(host: str) -> str:
    try:
        return str(socket.getaddrinfo(host, None)[0][4][0])
    except OSError as e:
        raise InternalError(f"error resolving passed in network volume address: {e}") from None


def _mount_source(opts: Mapping[str, str]) -> tuple[str, str]:
    """(device, options) to mount, as moby's getMountOptions: NFS/CIFS server names in
    `addr=` (and a CIFS device URL's host) are resolved, since no mount helper runs."""
    device, mount_opts = opts.get("device", ""), opts.get("o", "")
    if not device:
        raise InternalError("failed to mount local volume: missing device in volume options")
    if opts.get("type") in ("nfs", "cifs"):
        addr = _option(mount_opts, "addr")
        if addr and not _is_ipv4(addr):
            mount_opts = mount_opts.replace("addr=" + addr, "addr=" + _resolve(addr), 1)
        elif opts.get("type") == "cifs":
            url = urllib.parse.urlsplit(device)
            host = url.hostname or ""
            if host and not _is_ipv4(host) and ":" not in host:
                device = urllib.parse.unquote(url._replace(netloc=_resolve(host)).geturl())
    return device, mount_opts


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mount_points() -> set[str]:
    try:
        with open("/proc/self/mountinfo") as f:
            return {_unescape(line.split()[4]) for line in f if len(line.split()) > 4}
    except OSError:
        return set()


def _is_mount_point(path: str) -> bool:
    return path in _mount_points()


def _mounts_under(path: str) -> list[str]:
    prefix = path.rstrip("/") + "/"
    return sorted(p for p in _mount_points() if p == path or p.startswith(prefix))


# -- filesystem helpers ----------------------------------------------------------------------


def _remove_tree(path: str | None) -> None:
    if path is None:
        return
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("could not remove %s: %s", path, e)


def dir_size(path: str) -> int:
    """Apparent size of everything but directories, hard links counted once (moby's
    directory.Size)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def walk(directory: str) -> None:
        nonlocal total
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            if directory == path:
                raise
            return
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                walk(entry.path)
            elif st.st_size and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size

    walk(path)
    return total


def _size_or_unknown(path: str) -> int:
    try:
        return dir_size(path)
    except OSError as e:
        log.warning("could not determine the size of %s: %s", path, e)
        return -1


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_IGNORED_XATTR_ERRORS = (errno.ENOTSUP, errno.EOPNOTSUPP)


def copy_into_empty(source: str, target: str) -> bool:
    """Copy the tree under `source` into the empty directory `target` (fd-relative, never
    following a symlink of the source). False if `source` is not a directory or `target`
    is not empty."""
    try:
        src = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        dst = os.open(target, _DIR_FLAGS)
        try:
            if os.listdir(dst):
                return False
            _TreeCopy(dst).directory(src, dst, "")
            _copy_attributes(src, dst, os.fstat(src))
            return True
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_attributes(src_fd: int, dst_fd: int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then xattrs (file capabilities after
    chown), then times."""
    os.fchown(dst_fd, st.st_uid, st.st_gid)
    os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
    for key in os.listxattr(src_fd):
        try:
            os.setxattr(dst_fd, key, os.getxattr(src_fd, key))
        except OSError as e:
            if e.errno not in _IGNORED_XATTR_ERRORS:
                raise
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))


class _TreeCopy:
    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.links: dict[tuple[int, int], str] = {}  # source inode -> path copied (from root)

    def directory(self, src: int, dst: int, rel: str) -> None:
        for name in sorted(os.listdir(src)):
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            path = os.path.join(rel, name)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(name, 0o700, dir_fd=dst)
                child_src = os.open(name, _DIR_FLAGS, dir_fd=src)
                try:
                    child_dst = os.open(name, _DIR_FLAGS, dir_fd=dst)
                    try:
                        self.directory(child_src, child_dst, path)
                        _copy_attributes(child_src, child_dst, st)
                    finally:
                        os.close(child_dst)
                finally:
                    os.close(child_src)
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in self.links:
                    os.link(self.links[key], name, src_dir_fd=self.root_fd, dst_dir_fd=dst,
                            follow_symlinks=False)
                    continue
                self.file(src, dst, name, st)
                if st.st_nlink > 1:
                    self.links[key] = path
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                self.node_attributes(src, dst, name, st, symlink=True)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dst)
                self.node_attributes(src, dst, name, st, symlink=False)
            # sockets are not copied (nothing listens on them in a new volume)

    @staticmethod
    def file(src: int, dst: int, name: str, st: os.stat_result) -> None:
        fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
        try:
            fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                           | os.O_CLOEXEC, 0o600, dir_fd=dst)
            try:
                _copy_data(fin, fout)
                _copy_attributes(fin, fout, st)
            finally:
                os.close(fout)
        finally:
            os.close(fin)

    @staticmethod
    def node_attributes(src: int, dst: int, name: str, st: os.stat_result, *,
                        symlink: bool) -> None:
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not symlink:
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst)
        src_path, dst_path = f"/proc/self/fd/{src}/{name}", f"/proc/self/fd/{dst}/{name}"
        for key in os.listxattr(src_path, follow_symlinks=False):
            try:
                os.setxattr(dst_path, key, os.getxattr(src_path, key, follow_symlinks=False),
                            follow_symlinks=False)
            except OSError as e:  # symlinks refuse user.* attributes
                if e.errno not in _IGNORED_XATTR_ERRORS and not (symlink
                                                                 and e.errno == errno.EPERM):
                    raise
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)


def _copy_data(fin: int, fout: int) -> None:
    try:
        while os.sendfile(fout, fin, None, 1 << 30) > 0:
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    while chunk := os.read(fin, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fout, view):]
