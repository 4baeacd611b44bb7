"""One build: context → Dockerfile → plan → stages (concurrently) → tagged image.

Stages the target needs run as concurrent tasks; a stage waits only for the
stages its FROM and `COPY --from` name. Their progress messages still come out
in file order, as a sequential build prints them: the earliest unfinished
stage streams live, later ones are held until it is done. The first failure
cancels the other stages (which kill their build containers) and is reported
after the output of the stages before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile.lexer import expand
from dockerd_py.engine.images.hold import hold
from dockerd_py.engine.mount import mount_all
from dockerd_py.engine.reference import parse_normalized
from dockerd_py.engine.types import ImageRecord
from dockerd_py.errors import InvalidParameter, NotFound

from . import plan as planning
from . import progress
from .backend import Backend
from .context import BuildContext
from .dispatch import BUILTIN_ARGS, StageBuilder
from .layer import release
from .options import BuildOptions

Sink = Callable[[progress.Message], Awaitable[None]]


class _OrderedOutput:
    """Messages of concurrent stages, written in stage order."""

    def __init__(self, sink: Sink, order: list[int]) -> None:
        self._sink = sink
        self._order = order
        self._pos = 0
        self._held: dict[int, list[progress.Message]] = {i: [] for i in order}
        self._done: set[int] = set()
        self._lock = asyncio.Lock()

    def emitter(self, stage: int) -> Sink:
        async def emit(message: progress.Message) -> None:
            async with self._lock:
                if self._pos < len(self._order) and self._order[self._pos] == stage:
                    await self._sink(message)
                else:
                    self._held[stage].append(message)
        return emit

    async def finish(self, stage: int) -> None:
        async with self._lock:
            self._done.add(stage)
            while self._pos < len(self._order) and self._order[self._pos] in self._done:
                self._pos += 1
                if self._pos < len(self._order):
                    await self._flush(self._order[self._pos])

    async def flush_until(self, failed: int) -> None:
        """After a failure: what the stages up to the failed one held back."""
        async with self._lock:
            for stage in self._order[self._pos:self._order.index(failed) + 1]:
                await self._flush(stage)
            self._pos = len(self._order)

    async def _flush(self, stage: int) -> None:
        held, self._held[stage] = self._held[stage], []
        for message in held:
            await self._sink(message)


class Build:
    def __init__(self, backend: Backend, context: BuildContext,
                 dockerfile: ins.Dockerfile, options: BuildOptions, sink: Sink) -> None:
        self.backend = backend
        self.context = context
        self.dockerfile = dockerfile
        self.options = options
        self.sink = sink
        self.state_dir = context.root
        self.used_args: set[str] = set()
        self.meta_values: dict[str, str | None] = {}
        self.step_numbers: dict[int, int] = {}
        self.total_steps = 0
        self._results: dict[int, asyncio.Future[ImageRecord | None]] = {}
        self._plan: planning.Plan | None = None

    # -- planning ----------------------------------------------------------------

    def _number_steps(self, stages: list[ins.Stage]) -> None:
        n = 0
        for arg in self.dockerfile.meta_args:
            n += 1
            self.step_numbers[id(arg)] = n
        for stage in stages:
            n += 1
            self.step_numbers[id(stage.base)] = n
            for inst in stage.instructions:
                n += 1
                self.step_numbers[id(inst)] = n
        self.total_steps = n

    def _meta_args(self) -> None:
        for arg in self.dockerfile.meta_args:
            for name, default in arg.args:
                self.used_args.add(name)
                value = default
                if value is not None:
                    env = {k: v for k, v in self.meta_values.items() if v is not None}
                    value = expand(value, env, self.dockerfile.escape)
                given = self.options.build_args.get(name)
                self.meta_values[name] = given if given is not None else value

    def _from_image(self, stage: ins.Stage) -> str:
        env = {k: v for k, v in self.meta_values.items() if v is not None}
        return expand(stage.base.image, env, self.dockerfile.escape)

    # -- running -----------------------------------------------------------------

    async def run(self) -> ImageRecord:
        try:
            self._meta_args()
            from_images = {s.index: self._from_image(s) for s in self.dockerfile.stages}
            plan = planning.make_plan(self.dockerfile, self.options.target, from_images)
        except ins.DockerfileError as e:
            raise InvalidParameter(e.message) from None
        self._plan = plan
        stages = list(plan.stages)
        if self.options.labels:  # one LABEL step per --label, appended to the last stage
            last = stages[-1]
            extra: list[ins.Instruction] = [ins.Label.from_option(k, v)
                                            for k, v in sorted(self.options.labels.items())]
            stages[-1] = ins.Stage(last.index, last.base, list(last.instructions) + extra)
        self._number_steps(stages)
        if self.dockerfile.warnings:  # one stderr message, as the reference
            await self.sink(progress.stderr("".join(w + "\n" for w in self.dockerfile.warnings)))
        for arg in self.dockerfile.meta_args:
            for message in progress.step(self.step_numbers[id(arg)], self.total_steps,
                                         arg.original):
                await self.sink(message)
        loop = asyncio.get_running_loop()
        for index in plan.needed:
            self._results[index] = loop.create_future()
        output = _OrderedOutput(self.sink, plan.needed)
        tasks = [asyncio.create_task(self._stage(stages[i], from_images[i], output),
                                     name=f"build-stage-{i}") for i in plan.needed]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if failed:
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                first = min(failed, key=lambda t: plan.needed.index(_stage_of(t)))
                await output.flush_until(_stage_of(first))
                raise first.exception()  # type: ignore[misc]
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for fut in self._results.values():
                if not fut.done():
                    fut.cancel()
            raise
        result = self._results[plan.target].result()
        if result is None:
            raise InvalidParameter("No image was generated. Is your Dockerfile empty?")
        unused = [k for k in self.options.build_args
                  if k not in self.used_args and k not in BUILTIN_ARGS]
        if unused:
            await self.sink(progress.unused_args(unused))
        return result

    async def _stage(self, stage: ins.Stage, image_name: str, output: _OrderedOutput) -> None:
        emit = output.emitter(stage.index)
        try:
            for message in progress.step(self.step_numbers[id(stage.base)], self.total_steps,
                                         stage.base.original):
                await emit(message)
            base = await self._base_image(stage, image_name, emit)
            builder = StageBuilder(self, stage, emit)
            image = await builder.run(base)
            if image is not None:
                await emit(progress.aux_id(image.id))
        except BaseException as e:
            fut = self._results[stage.index]
            if not fut.done():
                fut.set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
                fut.exception()  # retrieved: others may never wait for it
            raise
        self._results[stage.index].set_result(image)
        await output.finish(stage.index)

    async def _base_image(self, stage: ins.Stage, name: str, emit: Any) -> ImageRecord | None:
        if name.lower() == "scratch":
            return None
        index = planning.from_stage(self.dockerfile.stages, name, stage.index)
        if index is not None:
            return await self._results[index]
        return await self.resolve_image(name, emit, pull=self.options.pull)

    async def resolve_image(self, name: str, emit: Any, *, pull: bool) -> ImageRecord:
        try:
            ref = parse_normalized(name)
        except Exception as e:
            raise InvalidParameter(str(e)) from None
        # The build's lease holds the image's layers before the build relies on them; one
        # removed (and collected) since the lookup is looked up, or pulled, again.
        for _ in range(2):
            image: ImageRecord | None = None
            if not pull:
                with contextlib.suppress(NotFound):
                    image = await self.backend.images.resolve(name)
            if image is None:
                image = await self.backend.puller.pull(
                    name, auth=self._auth_for(ref), platform=self.options.platform or None,
                    progress=emit)
            if await hold(self.backend.content, self.backend.snapshots, image):
                return image
        raise NotFound(f"No such image: {name}")

    def _auth_for(self, ref: Any) -> dict[str, Any] | None:
        domain = ref.string().split("/", 1)[0]
        for key in (domain, "https://index.docker.io/v1/" if domain == "docker.io" else ""):
            if key and key in self.options.auth:
                found = self.options.auth[key]
                return found if isinstance(found, dict) else None
        return None

    async def copy_source(self, before: int, name: str) -> ImageRecord | None:
        """The image `COPY --from=name` reads: an earlier stage's result, or an image."""
        try:
            index = planning.stage_index(self.dockerfile.stages, name, before)
        except ins.DockerfileError as e:
            raise InvalidParameter(e.message) from None
        if index is not None:
            return await self._results[index]
        try:
            parse_normalized(name)
        except Exception as e:  # the reference's wording (it never expands --from)
            reason = re.sub(r"repository name \([^)]*\) must", "repository name must", str(e))
            raise InvalidParameter(f"invalid from flag value {name}: {reason}") from None
        return await self.resolve_image(name, None, pull=False)

    @contextlib.asynccontextmanager
    async def image_view(self, image: ImageRecord | None) -> AsyncIterator[str]:
        """A read-only mount of an image's root filesystem."""
        target = await asyncio.to_thread(tempfile.mkdtemp, prefix="view-", dir=self.state_dir)
        try:
            if image is not None and image.top_chain:
                mounts = await self.backend.snapshots.mounts(image.top_chain)
                await asyncio.to_thread(mount_all, mounts, target,
                                        cwd=self.backend.snapshots.root)
            yield target
        finally:
            await asyncio.to_thread(_remove_view, target)


def _stage_of(task: asyncio.Task[Any]) -> int:
    return int(task.get_name().rsplit("-", 1)[1])


def _remove_view(target: str) -> None:
    if release(target):
        shutil.rmtree(target, ignore_errors=True)

