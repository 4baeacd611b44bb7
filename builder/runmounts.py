"""The mounts of one RUN step (`RUN --mount=...`), made ready on the host.

- bind: a path of the build context, of a stage, an image or a named context;
  read-only by default; `rw` gives the step a scratch copy whose changes are
  thrown away (BuildKit's "no output").
- cache: a persistent directory (cachemounts.py); seeded from `from`/`source`
  when it is created.
- tmpfs: a tmpfs of `size` bytes.
- secret: the client's secret (the build's SecretSource), written to a tmpfs of
  the step's and bound read-only as a file (`/run/secrets/<id>` unless
  `target`), and/or put in the step's environment (`env`); never in a layer,
  the history, the image config or the cache key. A missing secret fails the
  step when `required`, the mount is left out otherwise.
- ssh: the socket forwarding the client's agent, bound at `target`
  (`/run/buildkit/ssh_agent.N`); SSH_AUTH_SOCK names the first.

The mount points the runtime creates for them in the step's root filesystem
("stubs") are removed after the command (`remove_stubs`), so they leave no
trace in the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from dockerd_py.dockerfile.runflags import Mount
from dockerd_py.engine.mount import mount_tmpfs, unmount
from dockerd_py.engine.runtime.spec import MountSpec
from dockerd_py.errors import InvalidParameter, NotFound

from .cachemounts import CacheMounts
from .copy import resolve_in_root
from .options import BuildOptions


class MountScope(Protocol):
    """What the mounts need of the build (build.py's Build)."""

    options: BuildOptions
    cache_mounts: CacheMounts

    def source_view(self, before: int, name: str) -> AbstractAsyncContextManager[str]:
        """The root directory `from=name` reads: a stage's or image's filesystem (mounted
        read-only), a named context's directory, or the build context for ""."""


@dataclass
class Prepared:
    mounts: list[MountSpec] = field(default_factory=list)
    env: list[str] = field(default_factory=list)     # K=V for the step only
    stubs: list[str] = field(default_factory=list)   # rootfs paths the mounts may create


def target_path(mount_target: str, workdir: str) -> str:
    target = posixpath.normpath(posixpath.join(workdir or "/", mount_target))
    if target == "/":
        raise InvalidParameter(f'invalid mount target "{mount_target}"')
    return target


def _stub_of(rootfs: str, target: str) -> str | None:
    """The topmost component of target missing from the root filesystem (None: it is
    all there already)."""
    path = "/"
    for part in target.strip("/").split("/"):
        path = posixpath.join(path, part)
        if not os.path.lexists(resolve_in_root(rootfs, path)):
            return resolve_in_root(rootfs, path)
    return None


def remove_stubs(stubs: list[str]) -> None:
    """Remove the mount points left by the runtime, if nothing was written in them
    (blocking)."""
    for stub in sorted(stubs, key=len, reverse=True):
        if _only_stubs(stub):
            if os.path.isdir(stub) and not os.path.islink(stub):
                shutil.rmtree(stub, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(stub)


def _only_stubs(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if not stat.S_ISDIR(st.st_mode):
        return False
    return all(_only_stubs(os.path.join(path, name)) for name in os.listdir(path))


def _copy_source(source: str, scratch: str) -> None:
    if os.path.isdir(source):
        shutil.copytree(source, scratch, symlinks=True)
    else:
        shutil.copy2(source, scratch, follow_symlinks=False)


def _within(root: str, source: str, what: str) -> str:
    path = resolve_in_root(root, source or "/")
    if not os.path.lexists(path):
        raise InvalidParameter(f"failed to compute cache key: {what}: \"{source or '/'}\": "
                               "not found")
    return path


def _seed(view: str | None, source: str, uid: int, gid: int, mode: int) -> Callable[[str], None]:
    def seed(directory: str) -> None:
        if view is not None:
            path = _within(view, source, "cache mount source")
            if os.path.isdir(path):
                shutil.copytree(path, directory, symlinks=True, dirs_exist_ok=True)
            return
        os.chown(directory, uid, gid)
        os.chmod(directory, mode)
    return seed


def _write_secret(directory: str, name: str, data: bytes, uid: int, gid: int,
                  mode: int) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


@contextlib.asynccontextmanager
async def prepare(build: MountScope, stage: int, mounts: list[Mount], rootfs: str,
                  state_dir: str, workdir: str, step_name: str) -> AsyncIterator[Prepared]:
    out = Prepared()
    async with contextlib.AsyncExitStack() as stack:
        secrets_dir = ""
        ssh_index = 0
        for n, m in enumerate(mounts):
            if m.type == "secret":
                data = await _secret(build.options, m)
                if data is None:
                    continue
                if m.env is not None:
                    out.env.append(f"{m.env}={data.decode('utf-8', 'replace')}")
                target = m.secret_target
                if target is None:
                    continue
                if not secrets_dir:
                    secrets_dir = os.path.join(state_dir, "secrets")
                    await asyncio.to_thread(os.makedirs, secrets_dir, 0o700)
                    await asyncio.to_thread(mount_tmpfs, secrets_dir, "mode=0711,size=16m")
                    stack.push_async_callback(asyncio.to_thread, unmount, secrets_dir)
                host = await asyncio.to_thread(
                    _write_secret, secrets_dir, str(n), data, m.uid or 0, m.gid or 0,
                    m.mode if m.mode is not None else 0o400)
                out.mounts.append(MountSpec(target_path(target, workdir), host, "bind",
                                            ("ro", "bind")))
                continue
            if m.type == "ssh":
                sock = await _ssh(build.options, m)
                if sock is None:
                    continue
                target = m.target or f"/run/buildkit/ssh_agent.{ssh_index}"
                if ssh_index == 0:
                    out.env.append(f"SSH_AUTH_SOCK={target}")
                ssh_index += 1
                out.mounts.append(MountSpec(target_path(target, workdir), sock, "bind",
                                            ("bind",)))
                continue
            target = target_path(m.target, workdir)
            if m.type == "tmpfs":
                options = (f"size={m.size}",) if m.size else ()
                out.mounts.append(MountSpec(target, "tmpfs", "tmpfs", options))
            elif m.type == "cache":
                view = None
                if m.from_:
                    view = await stack.enter_async_context(build.source_view(stage, m.from_))
                seed = _seed(view, m.source, m.uid or 0, m.gid or 0,
                             m.mode if m.mode is not None else 0o755)
                directory = await stack.enter_async_context(build.cache_mounts.use(
                    m.cache_id, m.sharing or "shared", seed,
                    f"cached mount {target} (id={m.cache_id}) from {step_name}"))
                if m.source and view is None:
                    directory = _within(directory, m.source, "cache mount source")
                out.mounts.append(MountSpec(target, directory, "bind",
                                            ("ro",) if m.readonly else ()))
            else:  # bind
                root = await stack.enter_async_context(build.source_view(stage, m.from_))
                source = await asyncio.to_thread(_within, root, m.source, "bind source")
                if not m.readonly:  # writes are thrown away: a scratch copy
                    scratch = os.path.join(state_dir, f"bind-{n}")
                    await asyncio.to_thread(_copy_source, source, scratch)
                    source = scratch
                out.mounts.append(MountSpec(target, source, "bind",
                                            ("ro",) if m.readonly else ()))
        for spec in out.mounts:
            stub = await asyncio.to_thread(_stub_of, rootfs, spec.destination)
            if stub is not None:
                out.stubs.append(stub)
        yield out


async def _secret(options: BuildOptions, m: Mount) -> bytes | None:
    sid = m.secret_id
    if options.secrets is not None:
        try:
            return await options.secrets.get(sid)
        except NotFound:
            pass
    if m.required:
        raise InvalidParameter(f"secret {sid}: not found")
    return None


async def _ssh(options: BuildOptions, m: Mount) -> str | None:
    sid = m.id or "default"
    if options.ssh is not None:
        try:
            return await options.ssh.forward(sid)
        except NotFound:
            pass
    if m.required:
        raise InvalidParameter(f'no SSH key "{sid}" forwarded from the client')
    return None
