"""The built-in Dockerfile frontend: the client's files through its session, the build
on our builder (BuildService.solve), its events as the Status stream.

As BuildKit's frontend: the Dockerfile comes from the session's "dockerfile"
directory, the ignore patterns (<Dockerfile>.dockerignore beside it, else the
context's .dockerignore) go to the client, which sends the context ("context")
without what they exclude; a named local context (--build-context name=DIR) is
its own directory of the session. Everything lands in a private directory under
the builder's, removed when the build ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from builder.dispatch import StepFailed
from builder.dockerignore import read_patterns
from builder.observer import internal
from builder.request import NETWORK_HOST, BuildRequest, NamedContext
from builder.service import BuildService
from dockerd_py.engine.volumes.tree import dir_size
from dockerd_py.errors import InvalidParameter, NotFound

from . import session as sess
from .builds import Build, BuildResult
from .contexts import ContextDirs
from .frontend import FrontendRequest
from .inlinecache import RemoteOpener, open_sources
from .observe import StatusObserver, error_text
from .status import Progress

_MAX_DOCKERFILE = 16 << 20


class Secrets:
    """The session's secrets, as the builder asks for them."""

    def __init__(self, session: sess.Session) -> None:
        self._secrets = sess.SessionSecrets(session)

    async def get(self, secret_id: str) -> bytes:
        try:
            return await self._secrets.get(secret_id)
        except sess.NotFound as e:
            raise NotFound(str(e)) from None
        except sess.SessionError as e:
            raise InvalidParameter(str(e)) from None


class Ssh:
    def __init__(self, session: sess.Session) -> None:
        self._ssh = sess.SessionSSH(session)

    async def forward(self, ssh_id: str) -> str:
        try:
            return await self._ssh.forward(ssh_id)
        except sess.NotFound as e:
            raise NotFound(str(e)) from None
        except sess.SessionError as e:
            raise InvalidParameter(str(e)) from None

    async def close(self) -> None:
        await self._ssh.close()


class Auth:
    def __init__(self, session: sess.Session) -> None:
        self._auth = sess.SessionAuth(session)

    async def credentials(self, host: str) -> dict[str, Any] | None:
        try:
            user, secret = await self._auth.credentials(host)
        except sess.SessionError:
            return None
        if not secret:
            return None
        if not user:
            return {"identitytoken": secret}
        return {"username": user, "password": secret}


async def _sync(progress: Progress, session: sess.Session, name: str, label: str,
                dest: Path, what: str, **patterns: Any) -> str:
    """Sync the client's directory `name` into dest as a vertex `label`; its digest."""
    vertex = internal(label)
    await progress.started(vertex.digest, vertex.name)
    try:
        await sess.sync_directory(session, name, dest, **patterns)
    except sess.SessionError as e:
        await progress.completed(vertex.digest, str(e))
        raise InvalidParameter(str(e)) from None
    size = await asyncio.to_thread(dir_size, str(dest))
    await progress.status(vertex.digest, f"transferring {what}:", current=size, done=True)
    await progress.completed(vertex.digest)
    return vertex.digest


async def run_dockerfile(service: BuildService, dirs: ContextDirs,
                         request: FrontendRequest, build: Build,
                         remote: RemoteOpener) -> BuildResult:
    if build.session is None:
        raise InvalidParameter("a Dockerfile build needs the client's session (its context)")
    session = build.session.session
    async with contextlib.AsyncExitStack() as stack:
        context_dir = await stack.enter_async_context(dirs.hold(session.shared_key, "context"))
        contexts: dict[str, NamedContext] = {}
        for cname, local in request.named_contexts.items():
            named = await stack.enter_async_context(dirs.hold(session.shared_key, local))
            contexts[cname] = NamedContext(directory=str(named))
        return await _run(service, request, build, session, context_dir, contexts, remote)
    raise AssertionError("unreachable")  # the exit stack never swallows


async def _run(service: BuildService, request: FrontendRequest, build: Build,
               session: sess.Session, context_dir: Path,
               contexts: dict[str, NamedContext],
               remote: RemoteOpener) -> BuildResult:
    progress = build.progress
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="bk-", dir=service.root))
    ssh = Ssh(session)
    try:
        name = os.path.basename(request.filename) or "Dockerfile"
        dockerfile_dir = root / "dockerfile"
        await asyncio.to_thread(dockerfile_dir.mkdir, 0o755)
        definition = await _sync(progress, session, "dockerfile", "[internal] load build "
                                 f"definition from {name}", dockerfile_dir, "dockerfile",
                                 include=(name, f"{name}.dockerignore"))
        source = await asyncio.to_thread(_read, dockerfile_dir / name, name, True)
        ignore = await asyncio.to_thread(_read, dockerfile_dir / f"{name}.dockerignore",
                                         name, False)
        if ignore is None:
            ignore_dir = root / "ignore"
            await asyncio.to_thread(ignore_dir.mkdir, 0o700)
            await _sync(progress, session, "context", "[internal] load .dockerignore",
                        ignore_dir, "context", include=(".dockerignore",))
            ignore = await asyncio.to_thread(_read, ignore_dir / ".dockerignore", name, False)
        excludes = read_patterns(ignore.decode("utf-8", "replace")) if ignore else []
        await _sync(progress, session, "context", "[internal] load build context",
                    context_dir, "context", exclude=tuple(excludes))
        for cname, named in contexts.items():
            local = request.named_contexts[cname]
            await _sync(progress, session, local, f"[context {cname}] load from client",
                        Path(named.directory), "context")
        assert source is not None
        entitlements = frozenset(e for e in build.request.Entitlements if e == NETWORK_HOST)
        if request.network == "host":   # buildx asks for the entitlement with the mode
            entitlements |= {NETWORK_HOST}
        auth = Auth(session)
        breq = BuildRequest(
            dockerfile=source, observer=StatusObserver(progress, definition), dockerfile_name=name,
            build_args=dict(request.build_args), target=request.target,
            labels=dict(request.labels), no_cache=request.no_cache, pull=request.pull,
            network=request.network, extra_hosts=tuple(request.extra_hosts),
            platform=request.platform, contexts=contexts, secrets=Secrets(session),
            ssh=ssh, auth=auth, entitlements=entitlements)
        try:
            # after the definition, as BuildKit imports them (when the solve starts)
            async with open_sources(remote, build.cache_from, auth, progress,
                                    build.ref, service.backend.content,
                                    service.backend.snapshots) as sources:
                breq = dataclasses.replace(breq, cache_sources=sources)
                result = await service.solve(breq, str(context_dir))
        except StepFailed as e:     # in the words of dockerd 20.10's BuildKit
            raise StepFailed(error_text(e), e.code) from None
        return BuildResult(result.image_id, _config_bytes(result.config))
    finally:
        await ssh.close()
        await asyncio.to_thread(shutil.rmtree, root, True)


def _config_bytes(config: dict[str, Any]) -> bytes:
    return json.dumps(config, separators=(",", ":")).encode()


def _read(path: Path, name: str, required: bool) -> bytes | None:
    """A file the session sent (never through a symlink), bounded."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if required:
            raise InvalidParameter(f"failed to read dockerfile: open {name}: no such file "
                                   "or directory") from None
        return None
    except OSError as e:
        raise InvalidParameter(f"failed to read {path.name}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(_MAX_DOCKERFILE + 1)
    if len(data) > _MAX_DOCKERFILE:
        raise InvalidParameter(f"{path.name} is larger than {_MAX_DOCKERFILE} bytes")
    if required and not data.strip():
        raise InvalidParameter("the Dockerfile cannot be empty")
    return data
