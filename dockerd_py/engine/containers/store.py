"""The container store: every container's record, its lock, and the events about it.

Records live in memory (authoritative while the daemon runs) and are written
through to the metadata database on every change; each save is checked
against the state machine (state.py). The services that act on containers
(lifecycle, exec, health, update, top, stats, networks, log rotation) share
this store and serialise their changes to one container with its lock.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import os
import re
import sqlite3

from ...errors import Conflict, InvalidParameter, NotFound
from ..events import EventBus
from ..metadata.db import Database
from . import records
from .records import Container
from .state import check_transition

_HEX = re.compile(r"[0-9a-f]+")  # fullmatch


class ContainerStore:
    def __init__(self, db: Database, events: EventBus, state_root: str) -> None:
        self._db = db
        self._events = events
        self.state_root = state_root
        self._containers: dict[str, Container] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        os.makedirs(state_root, mode=0o710, exist_ok=True)
        os.chmod(state_root, 0o710)  # as dockerd's containers/, whatever made it before

    # -- lookup ----------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full ID, name (with or without '/'), or unique ID prefix."""
        if ref in self._containers:
            return self._containers[ref]
        name = ref.lstrip("/")
        for c in self._containers.values():
            if c.name == name:
                return c
        if ref and _HEX.fullmatch(ref):
            found = [c for c in self._containers.values() if c.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def find(self, cid: str) -> Container | None:
        """The record of a full ID, or None once it is gone."""
        return self._containers.get(cid)

    def list(self) -> builtins.list[Container]:
        """Newest first, as `docker ps` lists them."""
        return sorted(self._containers.values(), key=lambda c: c.seq, reverse=True)

    def check_name_free(self, name: str) -> None:
        for c in self._containers.values():
            if c.name == name:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by '
                               f'container "{c.id}". You have to remove (or rename) that '
                               "container to be able to reuse that name.")

    def names(self) -> set[str]:
        return {c.name for c in self._containers.values()}

    def image_users(self, image_id: str
                    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """(running, stopped) IDs of the containers made from an image."""
        users = [c for c in self._containers.values() if c.image_id == image_id]
        return ([c.id for c in users if c.state.running],
                [c.id for c in users if not c.state.running])

    def volume_users(self, *, running_only: bool) -> dict[str, builtins.list[str]]:
        """Volume name -> IDs of the containers that mount it, oldest first (the volume
        service's VolumeUsers)."""
        out: dict[str, builtins.list[str]] = {}
        for c in sorted(self._containers.values(), key=lambda c: c.seq):
            if running_only and not c.state.running:
                continue
            for p in c.mounts or ():
                if isinstance(p, dict) and p.get("Type") == "volume" and p.get("Name"):
                    users = out.setdefault(str(p["Name"]), [])
                    if c.id not in users:
                        users.append(c.id)
        return out

    # -- where a container's files live ------------------------------------------

    def state_dir(self, cid: str) -> str:
        return os.path.join(self.state_root, cid)

    def log_dir(self, cid: str) -> str:
        return self.state_dir(cid)

    # -- changes -------------------------------------------------------------------

    def lock(self, cid: str) -> asyncio.Lock:
        """The lock that serialises changes to one container ("create": to names)."""
        return self._locks.setdefault(cid, asyncio.Lock())

    async def load(self) -> builtins.list[Container]:
        """Read every record at daemon start."""
        for c in await self._db.run(records.load_all):
            self._containers[c.id] = c
        return self.list()

    async def insert(self, c: Container) -> Container:
        """Write a new record, numbered after every other; it is listed at once."""
        def insert(conn: sqlite3.Connection) -> Container:
            added = dataclasses.replace(c, seq=records.next_seq(conn))
            records.save(conn, added)
            return added

        # Shielded: a cancelled request must not undo a row the thread commits.
        added = await asyncio.shield(self._db.run(insert))
        self._containers[added.id] = added
        return added

    async def save(self, c: Container) -> Container:
        """Write a changed record; the caller holds lock(c.id)."""
        old = self._containers.get(c.id)
        if old is not None:
            check_transition(c.id, old.state.status, c.state.status)
        await self._db.run(lambda conn: records.save(conn, c))
        self._containers[c.id] = c
        return c

    async def delete(self, cid: str) -> None:
        await self._db.run(lambda conn: records.delete(conn, cid))
        del self._containers[cid]

    def forget_lock(self, cid: str) -> None:
        self._locks.pop(cid, None)

    def event(self, c: Container, action: str, **extra: str) -> None:
        """A container event, with its labels, image and name as attributes."""
        attrs = dict(c.config.get("Labels") or {})
        attrs.update({"image": c.image, "name": c.name}, **extra)
        self._events.publish("container", action, c.id, attrs)
