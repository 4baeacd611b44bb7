"""The container service contract: what front ends (the Docker API, a CRI server)
and the engine's other services may ask of containers.

A container is a record (store.py) over a writable snapshot of its image, with
a state that changes only as the state machine allows (state.py). Every
change to one container happens under its lock; a container is named by its
full ID, its name (with or without "/") or a unique ID prefix.

Lifecycle:
  * ``create(name, body)`` checks the config as dockerd does (400s before
    anything is made), then makes the volumes, the snapshot and the record; the
    container is "created" and emits "create".
  * ``start`` puts it into the runtime (rootfs mounts, volumes, networks, the OCI
    bundle, a conmon monitor that outlives the daemon, `runtime create/start`):
    "running", event "start". ``attach`` may connect before the start and sees
    all output from it.
  * ``pause``/``unpause`` freeze and thaw its processes ("paused").
  * When its process ends, the exit is recorded ("exited", exit code, "die")
    and the runtime state is taken apart; its restart policy may make it
    "restarting" and start it again after a back-off. ``stop`` signals and waits
    (then kills), ``kill`` signals, ``restart`` is stop then start.
  * ``wait`` resolves on the condition asked (next exit, not running, removed).
  * ``remove`` takes away a stopped container (a running one only with force):
    its record, snapshot, state directory and, asked for, its anonymous volumes.
  * At daemon start ``restore`` reloads the records, reattaches to containers
    that kept running, records the exits that happened meanwhile and resumes
    restart policies; ``close`` leaves them running (live restore) or stops them.

Exec sessions (``Execs``) run further processes in a running container; they
live in memory, as long as their container.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from ..diff import Change
from ..runtime.process import Process
from .records import Container, ExecSession


class StdioStream(Protocol):
    """A container's or exec's stdio: (stream, data) packets out, stdin in."""

    async def recv(self) -> tuple[int, bytes] | None:
        """The next packet (1: stdout, 2: stderr), None at the end."""

    async def send(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def close(self) -> None: ...


class LifecycleHooks(Protocol):
    """What follows a container through its life (health checks, log rotation)."""

    async def started(self, c: Container, proc: Process) -> None:
        """It runs (its lock is held)."""

    def restored(self, c: Container, proc: Process) -> None:
        """It was found running when the daemon started."""

    async def exited(self, cid: str) -> None:
        """Its process ended (its lock is held)."""

    def removed(self, cid: str) -> None:
        """It is being removed."""


class ContainerRecords(Protocol):
    """The records, their locks and events (the store) as other services use them."""

    def get(self, ref: str) -> Container:
        """By full ID, name or unique ID prefix; NotFound with dockerd's wording."""

    def find(self, cid: str) -> Container | None:
        """By full ID; None once it is gone."""

    def list(self) -> builtins.list[Container]: ...

    def lock(self, cid: str) -> asyncio.Lock: ...

    async def save(self, c: Container) -> Container:
        """Write a changed record (the caller holds its lock)."""

    def event(self, c: Container, action: str, **extra: str) -> None: ...


class Containers(Protocol):
    # -- queries
    def get(self, ref: str) -> Container: ...

    def list(self) -> builtins.list[Container]:
        """Newest first."""

    def state_dir(self, cid: str) -> str:
        """Where the container's own files live (hostname, hosts, resolv.conf, log)."""

    async def layer_dirs(self, c: Container) -> dict[str, str]: ...

    async def sizes(self, c: Container) -> tuple[int, int]:
        """(SizeRw, SizeRootFs)."""

    # -- lifecycle
    async def create(self, name: str | None, body: dict[str, Any]
                     ) -> tuple[Container, builtins.list[str]]:
        """The container and the warnings to show."""

    async def start(self, ref: str, *, netns: str | None = None) -> None:
        """netns: a pinned network namespace for a NetworkMode "none" container to join
        instead of a new one (a front end's own, e.g. a CRI pod's, prepared beforehand)."""

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None
                   ) -> None: ...

    async def kill(self, ref: str, sig: str | None = None) -> None: ...

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None
                      ) -> None: ...

    async def pause(self, ref: str) -> None: ...

    async def unpause(self, ref: str) -> None: ...

    def waiter(self, ref: str, condition: str) -> Callable[[], Any]:
        """Validate now; the returned coroutine function waits and returns the answer."""

    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False
                     ) -> None: ...

    async def rename(self, ref: str, new_name: str) -> None: ...

    async def update(self, ref: str, body: Any, api_version: tuple[int, int] = (1, 50)
                     ) -> builtins.list[str] | None: ...

    # -- streams and processes
    async def attach(self, ref: str, *, live: bool = True
                     ) -> tuple[Container, StdioStream | None]:
        """Connect to the container's stdio (also before its start, see attach.py);
        live=False only records the attach and gives no stream."""

    def resize(self, ref: str, height: int, width: int) -> None: ...

    def logs(self, ref: str, **options: Any) -> AsyncIterator[tuple[int, bytes, int]]:
        """(stream, line, timestamp in ns) records, as `docker logs` asks."""

    async def top(self, ref: str, ps_args: str | None) -> dict[str, Any]: ...

    def stats(self, ref: str, *, stream: bool, one_shot: bool
              ) -> AsyncGenerator[dict[str, Any], None]: ...


class Files(Protocol):
    """A container's files (ContainerFiles): `docker cp` both ways, export, diff, commit.
    cp and export see the files as the container does (volumes and binds included for
    cp); a container that does not run has its root filesystem mounted meanwhile."""

    async def stat_path(self, ref: str, path: str) -> dict[str, Any]: ...

    def archive_path(self, ref: str, path: str
                     ) -> AbstractAsyncContextManager[tuple[dict[str, Any],
                                                            AsyncIterator[bytes]]]:
        """(the path's stat, tar chunks); the chunks are read inside the context."""

    async def extract_to_dir(self, ref: str, path: str, chunks: AsyncIterator[bytes], *,
                             copy_uid_gid: bool = False,
                             allow_overwrite_dir_with_file: bool = True) -> None: ...

    def export(self, ref: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]: ...

    async def changes(self, ref: str) -> builtins.list[Change]: ...

    async def commit(self, ref: str, *, repo: str = "", tag: str = "", comment: str = "",
                     author: str = "", pause: bool = True, changes: Sequence[str] = (),
                     config: dict[str, Any] | None = None) -> str:
        """A new image: the container's image plus one layer of its changes; its ID."""


class Execs(Protocol):
    def get(self, exec_id: str) -> ExecSession: ...

    def create(self, ref: str, config: dict[str, Any]) -> ExecSession: ...

    def check_startable(self, exec_id: str) -> ExecSession:
        """What start() would refuse, checked before a client connection is hijacked."""

    async def start(self, exec_id: str, *, detach: bool,
                    console_size: list[int] | None = None) -> StdioStream | None: ...

    def resize(self, exec_id: str, height: int, width: int) -> None: ...

    def of_container(self, cid: str) -> builtins.list[str]:
        """The IDs of a container's exec sessions, oldest first."""
