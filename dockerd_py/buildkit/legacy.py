"""The Dockerfile frontend on the builder's current entry (builder.build.Build over a
context directory), until the builder's observer-based entry point replaces it.

The context and the Dockerfile come from the client's session (FileSync) into a
private build directory; the builder's progress messages (the legacy
"Step N/M : ..." stream, already in file order) become Status vertexes: one per
step, CACHED when the builder reuses a step, the RUN output as its logs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path

from builder.build import Build as BuilderBuild
from builder.context import BuildContext
from builder.dispatch import StepFailed
from builder.options import BuildOptions
from builder.run import RunOptions
from builder.service import BuildService
from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile.parser import parse
from dockerd_py.errors import InvalidParameter

from .builds import Build, BuildResult
from .frontend import FrontendRequest
from .session import sync_directory
from .status import Progress, vertex_digest

_STEP = re.compile(r"Step (\d+)/(\d+) : (.*)", re.S)
_IMAGE_LINE = re.compile(r" ---> [0-9a-f]{12}\n")
_STDERR = re.compile(r"\x1b\[91m(.*)\x1b\[0m", re.S)
_FAILED = re.compile(r"The command '(.*)' returned a non-zero code: \d+", re.S)
_QUIET = (" ---> Running in ", "Removing intermediate container ", "Successfully built ",
          "Successfully tagged ")


class LegacyProgress:
    """The builder's message stream as vertexes of one job."""

    def __init__(self, progress: Progress, ref: str) -> None:
        self.progress = progress
        self.ref = ref
        self.current = ""
        self.pending_step = ""

    async def __call__(self, message: dict[str, object]) -> None:
        text = message.get("stream")
        if not isinstance(text, str):
            return
        if self.pending_step and text == "\n":   # "Step N/M : X" and its newline come apart
            self.pending_step = ""
            return
        step = _STEP.fullmatch(text)
        if step:
            await self.close()
            n, total, original = step.groups()
            name = f"[{n}/{total}] {original.strip()}"
            self.current = vertex_digest(self.ref, n, original)
            self.pending_step = name
            await self.progress.started(self.current, name)
            return
        if not self.current:
            return
        if text == " ---> Using cache\n":
            await self.progress.cached(self.current)
            return
        if _IMAGE_LINE.fullmatch(text):
            await self.close()
            return
        if text.startswith(_QUIET):
            return
        err = _STDERR.fullmatch(text)
        if err:
            await self.progress.log(self.current, 2, err.group(1).encode())
        else:
            await self.progress.log(self.current, 1, text.encode())

    async def close(self) -> None:
        if self.current:
            await self.progress.completed(self.current)
            self.current = ""
            self.pending_step = ""


async def run_legacy(service: BuildService, request: FrontendRequest,
                     build: Build) -> BuildResult:
    if build.session is None:
        raise InvalidParameter("a Dockerfile build needs the client's session (context)")
    session = build.session.session
    if request.named_contexts:
        raise InvalidParameter("named build contexts (--build-context) are not supported "
                               "by this daemon's builder yet")
    root = await asyncio.to_thread(tempfile.mkdtemp, prefix="bk-", dir=service.root)
    context = BuildContext(root)
    try:
        dockerfile_dir = Path(root) / "dockerfile"
        await asyncio.to_thread(os.mkdir, context.dir, 0o755)
        await asyncio.to_thread(os.mkdir, dockerfile_dir, 0o700)
        name = os.path.basename(request.filename)
        progress = build.progress
        step = vertex_digest(build.ref, "[internal] dockerfile")
        await progress.started(step, f"[internal] load build definition from {name}")
        await sync_directory(session, "dockerfile", dockerfile_dir, include=(name,))
        size = await asyncio.to_thread(_tree_size, dockerfile_dir)
        await progress.status(step, "transferring dockerfile:", current=size, done=True)
        await progress.completed(step)
        step = vertex_digest(build.ref, "[internal] context")
        await progress.started(step, "[internal] load build context")
        await sync_directory(session, "context", Path(context.dir))
        size = await asyncio.to_thread(_tree_size, Path(context.dir))
        await progress.status(step, "transferring context:", current=size, done=True)
        await progress.completed(step)
        source = await asyncio.to_thread(_read_dockerfile, dockerfile_dir, name)
        try:
            dockerfile = parse(source, name=name)
        except ins.DockerfileError as e:
            raise InvalidParameter(e.message) from None
        await asyncio.to_thread(context.apply_dockerignore)
        network = {"default": "bridge", "": "bridge"}.get(request.network, request.network)
        options = BuildOptions(
            dockerfile=name, tags=(), build_args=dict(request.build_args),
            target=request.target, no_cache=request.no_cache, pull=request.pull,
            labels=dict(request.labels), platform=request.platform,
            run=RunOptions(network=network, extra_hosts=request.extra_hosts))
        sink = LegacyProgress(build.progress, build.ref)
        try:
            async with service.backend.leases.lease():
                image = await BuilderBuild(service.backend, context, dockerfile, options,
                                           sink).run()
        except StepFailed as e:     # in BuildKit's words, as buildx users know them
            failed = _FAILED.fullmatch(str(e))
            if failed:
                raise StepFailed(f'process "{failed.group(1)}" did not complete '
                                 f"successfully: exit code: {e.code}", e.code) from None
            raise
        await sink.close()
        return BuildResult(image.id, json.dumps(image.config, separators=(",", ":")).encode())
    finally:
        await context.close()


def _tree_size(root: Path) -> int:
    total = 0
    for directory, _, names in os.walk(root):
        for n in names:
            try:
                total += os.lstat(os.path.join(directory, n)).st_size
            except OSError:
                pass
    return total


def _read_dockerfile(directory: Path, name: str) -> bytes:
    path = directory / name
    if not path.is_file() or path.is_symlink():
        raise InvalidParameter(f"failed to read dockerfile: open {name}: no such file or "
                               "directory")
    data = path.read_bytes()
    if not data.strip():
        raise InvalidParameter("the Dockerfile cannot be empty")
    return data
