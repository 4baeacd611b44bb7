"""The local driver's device mounts: a volume created with `-o type=... -o device=...`
(tmpfs, nfs, cifs, a block device) has its device mounted on its _data directory for
its first user and unmounted after its last one, counted by container id. Volumes
without a device are plain directories and are never mounted.

After a daemon restart a device may still be mounted (found in mountinfo at startup),
and the containers that kept running still hold it: `restore()` says which.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import Iterable, Mapping

from ...errors import InternalError
from ..mount import mount_points
from .records import Volume


class LocalMounts:
    def __init__(self) -> None:
        self.refs: dict[str, set[str]] = {}   # volume -> containers holding its device mount
        self.mounted: set[str] = set()         # volumes whose device is mounted on _data
        self.restored = False                  # refs known since the daemon started

    def restore(self, refs: Mapping[str, Iterable[str]]) -> None:
        self.refs = {name: set(ids) for name, ids in refs.items() if ids}
        self.restored = True

    def found(self, vols: Iterable[Volume]) -> None:
        """At startup: the device-backed volumes whose device is mounted already."""
        points = mount_points()
        for vol in vols:
            if vol.needs_mount and vol.mountpoint in points:
                self.mounted.add(vol.name)

    def holds(self, name: str, container_id: str) -> bool:
        return container_id in self.refs.get(name, ())

    def in_use(self, name: str) -> bool:
        return bool(self.refs.get(name))

    def forget(self, name: str) -> None:
        self.refs.pop(name, None)

    async def acquire(self, vol: Volume, container_id: str) -> None:
        """The container starts using the volume (caller holds the volume's lock)."""
        if vol.needs_mount:
            if vol.name not in self.mounted:
                await self.mount(vol)
            self.refs.setdefault(vol.name, set()).add(container_id)

    async def release(self, vol: Volume, container_id: str) -> None:
        """The container stopped using it: the device goes after the last holder."""
        if vol.needs_mount:
            refs = self.refs.get(vol.name, set())
            refs.discard(container_id)
            if not refs:
                self.refs.pop(vol.name, None)
                if vol.name in self.mounted:
                    await self.umount(vol)

    async def mount(self, vol: Volume) -> None:
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
        self.mounted.add(vol.name)

    async def umount(self, vol: Volume) -> None:
        code, output = await _run(["umount", "-i", "--", vol.mountpoint])
        if code != 0 and await asyncio.to_thread(_is_mount_point, vol.mountpoint):
            raise InternalError(f"failed to unmount local volume: {output.strip()}")
        self.mounted.discard(vol.name)


async def _run(argv: list[str]) -> tuple[int, str]:
    if any("\0" in a for a in argv):  # options recorded before create refused a NUL
        return 1, "invalid argument"
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


def _is_mount_point(path: str) -> bool:
    return path in mount_points()
