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
import copy
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from dockerd_py.dockerfile import checks
from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile.lexer import expand
from dockerd_py.engine.images.hold import hold
from dockerd_py.engine.mount import mount_all
from dockerd_py.engine.reference import parse_normalized, with_default_tag
from dockerd_py.engine.types import ImageRecord
from dockerd_py.errors import InvalidParameter, NotFound

from . import imageconfig
from . import plan as planning
from .backend import Backend
from .cachemounts import CacheMounts
from .context import BuildContext, tree_digest
from .copy import resolve_in_root
from .dispatch import BUILTIN_ARGS, StageBuilder
from .layer import release
from .observer import BuildObserver, Vertex, Warning, internal, vertex_digest
from .options import BuildOptions
from .ordering import OrderedObserver
from .request import NamedContext
from .scope import COUNTED_STEPS
from .solve import check_platform, platform_args


class Build:
    def __init__(self, backend: Backend, context: BuildContext,
                 dockerfile: ins.Dockerfile, options: BuildOptions,
                 observer: BuildObserver, state_dir: str,
                 cache_mounts: CacheMounts) -> None:
        self.cache_mounts = cache_mounts
        self.backend = backend
        self.context = context
        self.dockerfile = dockerfile
        self.options = options
        self.sink = observer
        self.observer: OrderedObserver = OrderedObserver(observer, [])
        self.state_dir = state_dir
        self.used_args: set[str] = set()
        self.meta_values: dict[str, str | None] = {}
        self.step_numbers: dict[int, int] = {}
        self.total_steps = 0
        self.bk_totals: dict[int, int] = {}   # stage index -> BuildKit's step count
        self.bk_names: dict[int, str] = {}    # stage index -> BuildKit's stage prefix
        self._results: dict[int, asyncio.Future[ImageRecord | None]] = {}
        self._plan: planning.Plan | None = None
        self.check_config = checks.CheckConfig()
        self._reported: set[tuple[str, str, int]] = set()

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
        multi = len(self.dockerfile.stages) > 1
        for stage in stages:
            self.bk_names[stage.index] = (stage.name or f"stage-{stage.index}") if multi else ""
            self.bk_totals[stage.index] = sum(
                1 for inst in stage.instructions
                if isinstance(inst, COUNTED_STEPS))

    def bk_step_name(self, stage: int, index: int, text: str) -> str:
        """BuildKit's vertex name: "[stage-1 2/5] RUN make" (prefixCommand)."""
        total = self.bk_totals.get(stage, 0)
        if not total:
            return text
        prefix = self.bk_names.get(stage, "")
        width = len(str(total))
        return f"[{prefix + ' ' if prefix else ''}{index:>{width}}/{total}] {text}"

    def _meta_args(self) -> None:
        if self.options.buildkit:  # BuildKit's automatic platform ARGs
            self.meta_values.update(platform_args())
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
        name = expand(stage.base.image, env, self.dockerfile.escape)
        platform = stage.base.flags.get("platform", "")
        if platform and self.options.buildkit:  # FROM --platform: the host's only
            check_platform(expand(platform, env, self.dockerfile.escape))
        named = self.named_context(stage.index, name)
        if named is not None and named.image:
            return named.image
        if named is not None:
            raise InvalidParameter(f"FROM {name}: a local directory build context cannot be "
                                   "a stage's base here; COPY --from it instead")
        return name

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
        if self.options.labels and not self.options.buildkit:
            # the legacy builder: one LABEL step per --label, appended to the last stage
            last = stages[-1]
            extra: list[ins.Instruction] = [ins.Label.from_option(k, v)
                                            for k, v in sorted(self.options.labels.items())]
            stages[-1] = ins.Stage(last.index, last.base, list(last.instructions) + extra)
        self._number_steps(stages)
        for bk_stage in stages:  # FROM an image counts as a step (not scratch, not a stage)
            if self._from_is_image(bk_stage, from_images[bk_stage.index]):
                self.bk_totals[bk_stage.index] += 1
        if not self.options.buildkit:  # the legacy output: one stderr message
            for text in self.dockerfile.warnings:
                await self.sink.warning(Warning(short="", legacy=text))
        await self._checks()
        for arg in self.dockerfile.meta_args:
            vertex = Vertex(vertex_digest("meta-arg", arg.original), arg.original, hidden=True,
                            step=self.step_numbers[id(arg)], total=self.total_steps,
                            original=arg.original)
            await self.sink.started(vertex)
            await self.sink.completed(vertex, None, None)
        loop = asyncio.get_running_loop()
        for index in plan.needed:
            self._results[index] = loop.create_future()
        output = self.observer = OrderedObserver(self.sink, plan.needed)
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
        if self.options.labels and self.options.buildkit:
            result = await self._labelled(result)
        unused = [k for k in self.options.build_args
                  if k not in self.used_args and k not in BUILTIN_ARGS]
        if unused:
            await self.sink.unused_args(sorted(unused))
        return result

    async def _checks(self) -> None:
        """Build checks as warnings of the build definition's vertex; with
        `check=error=true`, their failure before any step runs."""
        try:
            config = checks.parse_check(self.dockerfile.directives.get("check", ""))
            config = config.merged(checks.parse_check(
                self.options.build_args.get("BUILDKIT_DOCKERFILE_CHECK") or ""))
        except ins.DockerfileError as e:
            raise InvalidParameter(e.message) from None
        if "BUILDKIT_DOCKERFILE_CHECK" in self.options.build_args:
            self.used_args.add("BUILDKIT_DOCKERFILE_CHECK")
        self.check_config = config
        findings = checks.enabled(checks.run_checks(self.dockerfile), config)
        for f in findings:
            await self.sink.warning(self._warning(f))
        if config.error and findings:
            raise InvalidParameter(checks.violation(findings))

    def _warning(self, f: checks.Finding) -> Warning:
        definition = internal(f"[internal] load build definition from {self.options.dockerfile}")
        return Warning(short=f.short, rule=f.rule, detail=(f.description,), url=f.url,
                       line=f.line, vertex=definition.digest)

    async def report_findings(self, findings: list[checks.Finding]) -> None:
        enabled = checks.enabled(findings, self.check_config)
        for f in enabled:
            if (f.rule, f.message, f.line) not in self._reported:
                self._reported.add((f.rule, f.message, f.line))
                await self.sink.warning(self._warning(f))
        if enabled and self.check_config.error:
            raise InvalidParameter(checks.violation(enabled))

    async def _labelled(self, image: ImageRecord) -> ImageRecord:
        """BuildKit's --label: into the result's config, with no step of its own."""
        doc = copy.deepcopy(image.config)
        config = doc.setdefault("config", {})
        config["Labels"] = {**(config.get("Labels") or {}), **self.options.labels}
        labelled, _ = await self.backend.images.record(imageconfig.encode(doc), image.layers,
                                                       parent=image.id)
        return labelled

    def _from_is_image(self, stage: ins.Stage, name: str) -> bool:
        return name.lower() != "scratch" and \
            planning.from_stage(self.dockerfile.stages, name, stage.index) is None

    def _from_vertex(self, stage: ins.Stage, name: str) -> Vertex:
        step, original = self.step_numbers[id(stage.base)], stage.base.original
        if not self._from_is_image(stage, name):
            return Vertex(vertex_digest("from", stage.index, original, name), f"FROM {name}",
                          stage.index, hidden=True, step=step, total=self.total_steps,
                          original=original)
        shown = name
        with contextlib.suppress(Exception):
            shown = with_default_tag(parse_normalized(name)).string()
        text = self.bk_step_name(stage.index, 1, f"FROM {shown}")
        return Vertex(vertex_digest("from", stage.index, original, shown), text, stage.index,
                      step=step, total=self.total_steps, original=original)

    async def _stage(self, stage: ins.Stage, image_name: str, output: OrderedObserver) -> None:
        vertex = self._from_vertex(stage, image_name)
        try:
            await output.started(vertex)
            try:
                base = await self._base_image(stage, image_name, vertex)
                builder = StageBuilder(self, stage, output, vertex)
            except BaseException as e:
                await output.completed(vertex, e, None)
                raise
            image = await builder.run(base)
            if image is not None:
                await output.stage_done(stage.index, image.id)
        except BaseException as e:
            fut = self._results[stage.index]
            if not fut.done():
                fut.set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
                fut.exception()  # retrieved: others may never wait for it
            raise
        self._results[stage.index].set_result(image)
        await output.finish(stage.index)

    async def _base_image(self, stage: ins.Stage, name: str,
                          vertex: Vertex) -> ImageRecord | None:
        if name.lower() == "scratch":
            return None
        index = planning.from_stage(self.dockerfile.stages, name, stage.index)
        if index is not None:
            return await self._results[index]
        return await self.resolve_image(name, vertex, pull=self.options.pull)

    async def resolve_image(self, name: str, vertex: Vertex | None, *,
                            pull: bool) -> ImageRecord:
        try:
            ref = parse_normalized(name)
        except Exception as e:
            raise InvalidParameter(str(e)) from None
        meta = internal(f"[internal] load metadata for {with_default_tag(ref).string()}")
        await self.sink.started(meta)
        try:
            image = await self._resolve(name, ref, vertex, pull=pull)
        except BaseException as e:
            await self.sink.completed(meta, e, None)
            raise
        await self.sink.completed(meta, None, None)
        return image

    async def _resolve(self, name: str, ref: Any, vertex: Vertex | None, *,
                       pull: bool) -> ImageRecord:
        async def emit(message: dict[str, Any]) -> None:
            if vertex is not None:
                await self.observer.status(vertex, message)

        # The build's lease holds the image's layers before the build relies on them; one
        # removed (and collected) since the lookup is looked up, or pulled, again.
        for _ in range(2):
            image: ImageRecord | None = None
            if not pull:
                with contextlib.suppress(NotFound):
                    image = await self.backend.images.resolve(name)
            if image is None:
                image = await self.backend.puller.pull(
                    name, auth=await self._auth_for(ref), platform=self.options.platform or None,
                    progress=emit if vertex is not None else None)
            if await hold(self.backend.content, self.backend.snapshots, image):
                return image
        raise NotFound(f"No such image: {name}")

    async def _auth_for(self, ref: Any) -> dict[str, Any] | None:
        domain = ref.string().split("/", 1)[0]
        if self.options.auth_source is not None:
            return await self.options.auth_source.credentials(domain)
        for key in (domain, "https://index.docker.io/v1/" if domain == "docker.io" else ""):
            if key and key in self.options.auth:
                found = self.options.auth[key]
                return found if isinstance(found, dict) else None
        return None

    def named_context(self, before: int, name: str) -> NamedContext | None:
        """The `--build-context` `name` stands for, unless an earlier stage has that name."""
        found = self.options.contexts.get(name)
        if found is None:
            return None
        with contextlib.suppress(ins.DockerfileError):
            if planning.stage_index(self.dockerfile.stages, name, before) is not None:
                return None
        return found

    async def copy_source(self, before: int, name: str) -> ImageRecord | None:
        """The image `COPY --from=name` reads: an earlier stage's result, or an image."""
        try:
            index = planning.stage_index(self.dockerfile.stages, name, before)
        except ins.DockerfileError as e:
            raise InvalidParameter(e.message) from None
        if index is not None:
            return await self._results[index]
        named = self.named_context(before, name)
        if named is not None and named.image:
            return await self.resolve_image(named.image, None, pull=False)
        try:
            parse_normalized(name)
        except Exception as e:  # the reference's wording (it never expands --from)
            reason = re.sub(r"repository name \([^)]*\) must", "repository name must", str(e))
            raise InvalidParameter(f"invalid from flag value {name}: {reason}") from None
        return await self.resolve_image(name, None, pull=False)

    @contextlib.asynccontextmanager
    async def source_view(self, before: int, name: str) -> AsyncIterator[str]:
        """The root directory `from=name` reads: the build context for "", a named
        context's directory, or a stage's or image's filesystem (mounted read-only)."""
        if not name:
            yield self.context.dir
            return
        named = self.named_context(before, name)
        if named is not None and named.directory:
            yield await asyncio.to_thread(os.path.realpath, named.directory)
            return
        image = await self.copy_source(before, name)
        async with self.image_view(image) as view:
            yield view

    async def source_digest(self, before: int, name: str, path: str) -> str:
        """What identifies `path` of source `name` for a cache key: a content digest of
        the context's (or a named directory's) files, an image's ID otherwise."""
        if not name:
            rel = path.strip("/") or "."
            if self.context.path_of(rel) is None:
                raise InvalidParameter(f"{path}: outside the build context")
            try:
                return "ctx:" + await asyncio.to_thread(self.context.digest, rel)
            except FileNotFoundError:
                return f"ctx:{rel}:missing"
        named = self.named_context(before, name)
        if named is not None and named.directory:
            digest = await asyncio.to_thread(_directory_digest, named.directory, path)
            return f"dir:{name}:{path}:{digest}"
        image = await self.copy_source(before, name)
        return f"image:{image.id if image else 'scratch'}:{path}"

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


def _directory_digest(directory: str, path: str) -> str:
    """tree_digest of path in directory, "missing" when there is none (blocking)."""
    target = resolve_in_root(os.path.realpath(directory), path)
    return tree_digest(target) if os.path.lexists(target) else "missing"


def _remove_view(target: str) -> None:
    if release(target):
        shutil.rmtree(target, ignore_errors=True)

