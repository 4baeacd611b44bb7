"""One stage of a build: its FROM, then one dispatch per instruction.

Mutable state is one record (`StageState`: the current image, its runtime
config, ARGs in scope, whether the cache is still usable). `dispatch` is a
single table from instruction type to handler. Every step ends in `_commit`,
which probes the cache and otherwise records a new image whose parent is the
previous step's: metadata steps with an empty layer, filesystem steps with the
layer their snapshot's diff gives (see layer.py). RUN and COPY/ADD are
handled in runstep.py and copystep.py.

Each instruction is one vertex for the build's observer (observer.py):
started, then cached / container / log events from `_commit` and the
handlers, then completed with the step's image. Its BuildKit name is the
instruction as written, variables expanded, prefixed "[stage k/n]" when it is
a step BuildKit shows (FROM an image, RUN, COPY, ADD, WORKDIR).
"""

from __future__ import annotations

import asyncio
import copy
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from dockerd_py.dockerfile import checks
from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile.lexer import Lexer
from dockerd_py.dockerfile.lexer import expand as expand_word
from dockerd_py.dockerfile.parser import parse_instruction
from dockerd_py.engine.images.hold import hold
from dockerd_py.engine.images.mediatypes import now_rfc3339
from dockerd_py.engine.timestamps import parse_time
from dockerd_py.engine.types import ImageRecord
from dockerd_py.errors import InvalidParameter

from . import copy as copying
from . import imageconfig, metadata
from .cache import step_key
from .copystep import copy_step
from .layer import StepFS, commit_layer, normalize_times, step_fs, unmount_step
from .observer import BuildObserver, Vertex, vertex_digest
from .request import ImportedStep
from .runstep import run_step
from .scope import BUILTIN_ARGS as BUILTIN_ARGS
from .scope import COUNTED_STEPS, BuildScope, StageState
from .scope import StepFailed as StepFailed


class _Recording(dict[str, str]):
    """An environment that remembers the names looked up in vain."""

    def __init__(self, base: dict[str, str]) -> None:
        super().__init__(base)
        self.missing: list[str] = []

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        if not found and isinstance(key, str) and key not in self.missing:
            self.missing.append(key)
        return found


class StageBuilder:
    def __init__(self, build: BuildScope, stage: ins.Stage, observer: BuildObserver,
                 from_vertex: Vertex) -> None:
        self.build = build
        self.stage = stage
        self.observer = observer
        self.state = StageState()
        self.backend = build.backend
        self.vertex = from_vertex          # the step running now
        self._bk_index = 0 if from_vertex.hidden else 1
        self._last_digest = from_vertex.digest
        # the step a shown vertex follows: the last shown one (BuildKit has no vertex for ENV)
        self._last_shown = "" if from_vertex.hidden else from_vertex.digest
        self._findings: list[checks.Finding] = []  # build checks found while expanding

    # -- expansion -------------------------------------------------------------

    def env_for_expansion(self) -> dict[str, str]:
        """ENV first, then ARGs in scope that ENV does not set (as the reference)."""
        out: dict[str, str] = {}
        for name, value in self.state.args.items():
            if value is not None:
                out[name] = value
        for entry in self.state.config.get("Env") or []:
            key, _, value = entry.partition("=")
            out[key] = value
        return out

    def expand(self, inst: ins.Instruction) -> ins.Instruction:
        env = _Recording(self.env_for_expansion())
        escape = self.build.dockerfile.escape
        expanded = inst.expand(lambda word: expand_word(word, env, escape))
        undefined = [n for n in env.missing if n not in self.state.args]
        if undefined:  # BuildKit's UndefinedVar check (it needs the base image's ENV)
            self._findings += [checks.undefined_var(n, sorted(env), inst.line)
                               for n in undefined]
        return expanded

    def build_args_in_effect(self) -> list[str]:
        """K=V for the ARGs with a value that ENV does not override, sorted."""
        env_keys = {e.split("=", 1)[0] for e in self.state.config.get("Env") or []}
        return sorted(f"{k}={v}" for k, v in self.state.args.items()
                      if v is not None and k not in env_keys)

    def builtin_args_env(self) -> list[str]:
        env_keys = {e.split("=", 1)[0] for e in self.state.config.get("Env") or []}
        return [f"{k}={v}" for k, v in sorted(self.build.options.build_args.items())
                if k in BUILTIN_ARGS and v is not None and k not in env_keys
                and k not in self.state.args]

    # -- the stage -------------------------------------------------------------

    async def run(self, from_image: ImageRecord | None) -> ImageRecord | None:
        state = self.state
        state.image = from_image
        base = copy.deepcopy((from_image.config.get("config") if from_image else None) or {})
        triggers = list(base.get("OnBuild") or [])
        base["OnBuild"] = None
        state.config = imageconfig.with_default_path(imageconfig.normalize(base))
        from_vertex = self.vertex
        try:
            if triggers:
                await self.observer.triggers(from_vertex, len(triggers))
                for text in triggers:
                    try:
                        trigger = parse_instruction(text)  # (the reference: default escape)
                    except ins.DockerfileError as e:
                        raise InvalidParameter(e.message) from None
                    await self.step(trigger, trigger=True)
        except BaseException as e:
            await self.observer.completed(from_vertex, e, None)
            raise
        await self.observer.completed(from_vertex, None, state.image.id if state.image else "")
        for inst in self.stage.instructions:
            await self.step(inst)
        return state.image

    def _vertex(self, inst: ins.Instruction, trigger: bool) -> Vertex:
        counted = isinstance(inst, COUNTED_STEPS)
        text = inst.original
        try:  # BuildKit names a step by its text with the variables known there expanded
            text = Lexer(self.build.dockerfile.escape, skip_unset=True, raw_quotes=True).word(
                inst.original, self.env_for_expansion())
        except ins.DockerfileError:
            pass
        keyword, _, rest = text.partition(" ")
        text = keyword.upper() + (" " + rest if rest else "")
        if trigger:
            text = "ONBUILD " + text
        name = text
        if counted:
            self._bk_index += 1
            name = self.build.bk_step_name(self.stage.index, self._bk_index, text)
        digest = vertex_digest("step", self.stage.index, self._last_digest, inst.original, name)
        self._last_digest = digest
        inputs = (self._last_shown,) if self._last_shown else ()
        if counted:
            self._last_shown = digest
        return Vertex(digest, name, self.stage.index, inputs=inputs,
                      hidden=not counted, step=self.build.step_numbers.get(id(inst), 0),
                      total=self.build.total_steps, original=inst.original, trigger=trigger)

    async def step(self, inst: ins.Instruction, *, trigger: bool = False) -> None:
        """One instruction as one vertex: started, dispatched, completed."""
        vertex = self.vertex = self._vertex(inst, trigger)
        await self.observer.started(vertex)
        try:
            await self.dispatch(inst)
        except BaseException as e:
            await self.observer.completed(vertex, e, None)
            raise
        image = self.state.image
        await self.observer.completed(vertex, None, image.id if image else "")

    async def dispatch(self, inst: ins.Instruction) -> None:
        if isinstance(inst, ins.Arg):
            await self._arg(inst)
            return
        handler = _HANDLERS.get(type(inst))
        if handler is None:
            raise InvalidParameter(f"unknown instruction: {inst.keyword}")
        expanded = self.expand(inst)
        if self._findings:
            findings, self._findings = self._findings, []
            await self.build.report_findings(findings)
        await handler(self, expanded)

    # -- committing a step -----------------------------------------------------

    async def _commit(self, created_by: str, config: dict[str, Any], *,
                      inputs: list[str] | None = None,
                      change: Callable[[StepFS], Awaitable[None]] | None = None,
                      container_lines: bool = False, runs_command: bool = False) -> None:
        state = self.state
        parent_id = state.image.id if state.image else ""
        config = copy.deepcopy(config)
        config["Image"] = parent_id
        key = step_key(parent_id, created_by, config, inputs)
        if not self.build.options.no_cache and not state.cache_busted:
            cached_id = await self.backend.cache.lookup(key)
            if cached_id is not None:
                cached = await self.backend.images.get(cached_id)
                if cached is not None and await hold(self.backend.content,
                                                     self.backend.snapshots, cached):
                    await self.observer.cached(self.vertex)
                    state.image, state.config = cached, config
                    return
            imported = await self._imported(key)
            if imported is not None:   # --cache-from: the image a warm cache would give
                image = await self._record(created_by, config, imported.layer,
                                           created=imported.created)
                await self.backend.cache.record(key, image.id, parent_id, created_by)
                await self.observer.cached(self.vertex)
                state.image, state.config = image, config
                return
        state.cache_busted = True
        layer = None
        if change is None and container_lines:
            # dockerd runs every metadata step in a container it commits at once; nothing
            # needs running here, but the CLI user sees the same lines, with the step's ID
            step_id = uuid.uuid4().hex + uuid.uuid4().hex
            await self.observer.container(self.vertex, step_id, True)
            await self.observer.container(self.vertex, step_id, False)
        if change is not None:
            async with step_fs(self.backend.snapshots, state.image, self.build.state_dir) as fs:
                if container_lines:
                    await self.observer.container(self.vertex, fs.key, True)
                await change(fs)
                await unmount_step(fs)
                if not runs_command:  # COPY, ADD, WORKDIR: reproducible layers
                    await asyncio.to_thread(normalize_times, fs.upper, fs.keep_times,
                                            self._reference_time())
                layer = await commit_layer(self.backend.snapshots, self.backend.content,
                                           state.image, fs)
            if container_lines:
                await self.observer.container(self.vertex, fs.key, False)
        image = await self._record(created_by, config, layer)
        await self.backend.cache.record(key, image.id, parent_id, created_by)
        state.image, state.config = image, config

    async def _imported(self, key: str) -> ImportedStep | None:
        for source in self.build.options.cache_sources:
            found = await source.lookup(key, self.state.image)
            if found is not None:
                return found
        return None

    def _reference_time(self) -> float:
        """The creation time of the base image's first history entry (the epoch for
        scratch): a time that does not change when the steps above it are rebuilt."""
        history = (self.state.image.config.get("history") or [{}]) if self.state.image else [{}]
        created = str(history[0].get("created") or "")
        return parse_time(created) if created else 0.0

    async def _record(self, created_by: str, config: dict[str, Any],
                      layer: Any, created: str = "") -> ImageRecord:
        parent = self.state.image
        doc = parent.config if parent else {}
        layers = list(parent.layers) if parent else []
        history = list(doc.get("history") or [])
        created = created or now_rfc3339()
        history.append(imageconfig.history_entry(created, created_by, layer is None,
                                                 author=self.state.author))
        if layer is not None:
            layers.append(layer)
        document = imageconfig.image_document(
            doc, imageconfig.normalize(config), [x.diff_id for x in layers], history, created,
            self.state.author)
        image, _ = await self.backend.images.record(imageconfig.encode(document), layers,
                                                   parent=parent.id if parent else "")
        return image

    async def _metadata(self, config: dict[str, Any], text: str) -> None:
        await self._commit(imageconfig.nop(config, text), config, container_lines=True)

    # -- ARG -------------------------------------------------------------------

    async def _arg(self, inst: ins.Arg) -> None:
        words = []
        for name, default in inst.args:
            value = default
            if default is not None:
                value = expand_word(default, self.env_for_expansion(),
                                    self.build.dockerfile.escape)
            words.append(name if value is None else f"{name}={value}")
            self.build.used_args.add(name)
            given = self.build.options.build_args.get(name)
            if given is not None:
                value = given
            elif value is None and name in self.build.meta_values:
                value = self.build.meta_values[name]
            self.state.args[name] = value
        await self._metadata(self.state.config, "ARG " + " ".join(words))


# -- handlers ----------------------------------------------------------------------------------


# Steps that only change the config: (config, instruction) -> (config, history text).
_CONFIG_STEPS: dict[type, Callable[[dict[str, Any], Any], tuple[dict[str, Any], str]]] = {
    ins.Env: metadata.env, ins.Expose: metadata.expose, ins.Volume: metadata.volume,
    ins.User: metadata.user, ins.Healthcheck: metadata.healthcheck,
    ins.StopSignal: metadata.stopsignal, ins.Shell: metadata.shell,
    ins.Onbuild: metadata.onbuild,
}


async def _config_step(b: StageBuilder, inst: ins.Instruction) -> None:
    await b._metadata(*_CONFIG_STEPS[type(inst)](b.state.config, inst))


async def _label(b: StageBuilder, inst: ins.Label) -> None:
    await b._metadata(*metadata.label(b.state.config, inst.pairs))


async def _maintainer(b: StageBuilder, inst: ins.Maintainer) -> None:
    b.state.author = inst.name
    await b._metadata(b.state.config, f"MAINTAINER {inst.name}")


async def _cmd(b: StageBuilder, inst: ins.Cmd) -> None:
    b.state.cmd_set = True
    await b._metadata(*metadata.cmd(b.state.config, inst))


async def _entrypoint(b: StageBuilder, inst: ins.Entrypoint) -> None:
    await b._metadata(*metadata.entrypoint(b.state.config, inst, b.state.cmd_set))


async def _workdir(b: StageBuilder, inst: ins.Workdir) -> None:
    config = metadata.workdir(b.state.config, inst.path)
    path = config["WorkingDir"]

    async def mkdir(fs: StepFS) -> None:
        def make() -> None:
            target = copying.resolve_in_root(fs.rootfs, path)
            rel = os.path.relpath(target, fs.rootfs)
            copying.make_dirs(fs.rootfs, "" if rel == "." else rel, copying.Ownership())
        await asyncio.to_thread(make)

    await b._commit(imageconfig.nop(config, f"WORKDIR {path}", spaced=False), config,
                    change=mkdir, container_lines=True)

_HANDLERS: dict[type, Callable[[StageBuilder, Any], Awaitable[None]]] = {
    **{kind: _config_step for kind in _CONFIG_STEPS},
    ins.Label: _label, ins.Maintainer: _maintainer, ins.Cmd: _cmd,
    ins.Entrypoint: _entrypoint, ins.Workdir: _workdir, ins.Run: run_step, ins.Copy: copy_step,
    ins.Add: copy_step,
}
