"""One stage of a build: its FROM, then one dispatch per instruction.

Mutable state is one record (`StageState`: the current image, its runtime
config, ARGs in scope, whether the cache is still usable). `dispatch` is a
single table from instruction type to handler. Every step ends in `_commit`,
which probes the cache and otherwise records a new image whose parent is the
previous step's: metadata steps with an empty layer, filesystem steps with the
layer their snapshot's diff gives (see layer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import hashlib
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile import runflags
from dockerd_py.dockerfile.lexer import Lexer
from dockerd_py.dockerfile.lexer import expand as expand_word
from dockerd_py.dockerfile.parser import parse_instruction
from dockerd_py.dockerfile.runflags import Mount
from dockerd_py.engine.images.hold import hold
from dockerd_py.engine.images.mediatypes import now_rfc3339
from dockerd_py.engine.timestamps import parse_time
from dockerd_py.engine.types import ImageRecord
from dockerd_py.errors import DaemonError, InvalidParameter

from . import copy as copying
from . import imageconfig, metadata, progress, runmounts
from .backend import Backend
from .cache import step_key
from .cachemounts import CacheMounts
from .context import BuildContext, file_digest, tree_digest
from .layer import StepFS, commit_layer, normalize_times, step_fs, unmount_step
from .observer import STDERR, STDOUT, BuildObserver, Vertex, vertex_digest
from .options import BuildOptions
from .request import NETWORK_HOST, SECURITY_INSECURE, NamedContext
from .run import RunOptions
from .run import run as run_command


class BuildScope(Protocol):
    """What a stage reads and reaches of its build (build.py's Build)."""

    backend: Backend
    context: BuildContext
    dockerfile: ins.Dockerfile
    options: BuildOptions
    state_dir: str                            # the build's private directory
    used_args: set[str]                       # build args some ARG consumed
    meta_values: dict[str, str | None]        # the ARGs before the first FROM
    step_numbers: dict[int, int]              # id(instruction) -> its "Step N"
    total_steps: int

    def bk_step_name(self, stage: int, index: int, text: str) -> str:
        """BuildKit's name of the index-th counted step of a stage."""

    async def copy_source(self, before: int, name: str) -> ImageRecord | None:
        """The image `COPY --from=name` reads."""

    def image_view(self, image: ImageRecord | None) -> AbstractAsyncContextManager[str]:
        """A read-only mount of an image's root filesystem."""

    def named_context(self, before: int, name: str) -> NamedContext | None:
        """The `--build-context` name stands for (None: a stage or an image)."""

    def source_view(self, before: int, name: str) -> AbstractAsyncContextManager[str]:
        """The root directory `from=name` reads ("": the build context)."""

    async def source_digest(self, before: int, name: str, path: str) -> str:
        """What identifies the content of `path` in source `name` (for cache keys)."""

    cache_mounts: CacheMounts

# Build args every build accepts without an ARG (moby's builtinAllowedBuildArgs).
BUILTIN_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                          "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy",
                          "ALL_PROXY", "all_proxy"})


class StepFailed(DaemonError):
    """A RUN whose command exited non-zero; `code` becomes the CLI's exit status."""

    status = 500

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class StageState:
    image: ImageRecord | None = None            # the latest step's image (None: scratch)
    config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)  # ARGs declared in the stage
    author: str = ""
    cmd_set: bool = False
    cache_busted: bool = False


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
        env = self.env_for_expansion()
        escape = self.build.dockerfile.escape
        return inst.expand(lambda word: expand_word(word, env, escape))

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
        counted = isinstance(inst, (ins.Run, ins.Copy, ins.Workdir))
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
        return Vertex(digest, name, self.stage.index, inputs=(self.vertex.digest,),
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
        await handler(self, self.expand(inst))

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

    def _reference_time(self) -> float:
        """The creation time of the base image's first history entry (the epoch for
        scratch): a time that does not change when the steps above it are rebuilt."""
        history = (self.state.image.config.get("history") or [{}]) if self.state.image else [{}]
        created = str(history[0].get("created") or "")
        return parse_time(created) if created else 0.0

    async def _record(self, created_by: str, config: dict[str, Any],
                      layer: Any) -> ImageRecord:
        parent = self.state.image
        doc = parent.config if parent else {}
        layers = list(parent.layers) if parent else []
        history = list(doc.get("history") or [])
        created = now_rfc3339()
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


def _run_command(b: StageBuilder, inst: ins.Run) -> list[str]:
    if not inst.heredocs:
        return metadata.command(b.state.config, inst.command, inst.shell_form)
    script = " ".join(inst.command)
    first = inst.heredocs[0]
    if len(inst.heredocs) == 1 and script.strip().lstrip("<").lstrip("-").strip("'\"") \
            == first.name:
        # RUN <<EOF: the body is the script (as BuildKit runs it).
        return imageconfig.shell_of(b.state.config) + [first.body()]
    body = script
    for doc in inst.heredocs:
        body += "\n" + doc.body() + doc.name
    return imageconfig.shell_of(b.state.config) + [body + "\n"]


def _run_mounts(b: StageBuilder, inst: ins.Run) -> list[Mount]:
    env = b.env_for_expansion()
    escape = b.build.dockerfile.escape
    try:
        return runflags.parse_mounts(inst.flags.get("mount", ""),
                                     lambda word: expand_word(word, env, escape))
    except ins.DockerfileError as e:
        raise InvalidParameter(e.message) from None


def _run_options(b: StageBuilder, inst: ins.Run) -> tuple[RunOptions, bool]:
    """The step's network (RUN --network) and whether it runs privileged (--security)."""
    options = b.build.options
    run_options = options.run
    network = inst.flags.get("network", "default")
    if network == "none":
        run_options = dataclasses.replace(run_options, network="none")
    elif network == "host":
        # BuildKit's entitlement; on the legacy path, a build the client runs on the host's
        # network already
        if NETWORK_HOST not in options.entitlements and run_options.network != "host":
            raise InvalidParameter("entitlement network.host is not allowed")
        run_options = dataclasses.replace(run_options, network="host")
    insecure = inst.flags.get("security", "sandbox") == "insecure"
    if insecure and SECURITY_INSECURE not in options.entitlements:
        raise InvalidParameter("entitlement security.insecure is not allowed")
    return run_options, insecure


async def _run(b: StageBuilder, inst: ins.Run) -> None:
    mounts = _run_mounts(b, inst)
    run_options, privileged = _run_options(b, inst)
    args = _run_command(b, inst)
    build_args = b.build_args_in_effect()
    saved = ([f"|{len(build_args)}", *build_args] if build_args else []) + args
    created_by = " ".join(saved)
    config = b.state.config
    run_config = copy.deepcopy(config)
    run_config.update(Cmd=args, Entrypoint=None, Tty=False, OpenStdin=False)
    run_config["Env"] = list(config.get("Env") or []) + build_args + b.builtin_args_env()
    run_config["Hostname"] = ""
    shown = " ".join(args)
    inputs = None
    if mounts or "network" in inst.flags or "security" in inst.flags:
        # what the step reads through its mounts is part of its key; secrets and caches not
        inputs = [f"{k}={v}" for k, v in sorted(inst.flags.items())]
        for m in mounts:
            if m.type == "bind":
                inputs.append(await b.build.source_digest(b.stage.index, m.from_, m.source))
    workdir = str(config.get("WorkingDir") or "/")

    async def execute(fs: StepFS) -> None:
        host_network = run_options.network == "host"
        run_config["Hostname"] = os.uname().nodename if host_network else fs.key[:12]
        vertex = b.vertex

        async def output(name: str, data: bytes) -> None:
            await b.observer.log(vertex, STDOUT if name == "stdout" else STDERR, data)

        runtime = b.backend.runtimes.get(b.backend.runtimes.default)
        async with runmounts.prepare(b.build, b.stage.index, mounts, fs.rootfs, fs.state_dir,
                                     workdir, f"exec {shown}") as prepared:
            step_config = run_config
            if prepared.env:
                step_config = dict(run_config, Env=list(run_config["Env"]) + prepared.env)
            try:
                code = await run_command(runtime, b.backend.networks, fs, step_config,
                                         run_options, output, prepared.mounts, privileged)
            finally:
                await asyncio.to_thread(runmounts.remove_stubs, prepared.stubs)
        if code != 0:
            raise StepFailed(f"The command '{shown}' returned a non-zero code: {code}", code)

    await b._commit(created_by, config, inputs=inputs, change=execute, container_lines=True,
                    runs_command=True)


async def _copy(b: StageBuilder, inst: ins.Copy) -> None:
    is_add = isinstance(inst, ins.Add)
    verb = "ADD" if is_add else "COPY"
    config = b.state.config
    dest = inst.dest
    if not dest.startswith("/"):
        workdir = config.get("WorkingDir") or "/"
        trailing = dest.endswith("/") or dest == "."
        dest = posixpath.join(workdir, dest)
        if trailing and not dest.endswith("/"):
            dest += "/"
    source_flag = inst.flags.get("from", "")
    chown, chmod = inst.flags.get("chown", ""), inst.flags.get("chmod", "")
    mode = None
    if chmod:
        try:
            mode = int(chmod, 8)
        except ValueError:
            raise InvalidParameter(f"invalid chmod parameter: {chmod!r}") from None
        if not 0 <= mode <= 0o7777:
            raise InvalidParameter(f"invalid chmod parameter: {chmod!r}")

    source_image: ImageRecord | None = None
    named = b.build.named_context(b.stage.index, source_flag) if source_flag else None
    from_directory = named is not None and bool(named.directory)
    if source_flag and not from_directory:
        source_image = await b.build.copy_source(b.stage.index, source_flag)

    heredoc_dir = ""
    patterns = list(inst.sources)
    urls = [s for s in patterns if is_add and copying.is_url(s)]
    if not source_flag:
        for s in patterns:
            if copying.is_url(s) and not is_add:
                raise InvalidParameter("source can't be a URL for COPY")
    inputs: list[str] = [f"chown={chown}", f"chmod={chmod}", f"from={source_flag}"]
    hashes: list[str] = []
    ctx = b.build.context
    if inst.heredocs:
        heredoc_dir = await asyncio.to_thread(tempfile.mkdtemp, prefix="heredoc-",
                                              dir=b.build.state_dir)
        for index, doc in enumerate(inst.heredocs):
            # stored by position: the delimiter word is the client's and may hold "/" or ".."
            path = os.path.join(heredoc_dir, str(index))
            text = doc.rendered(b.env_for_expansion())
            await asyncio.to_thread(_write_text, path, text)
            digest = hashlib.sha256(text.encode()).hexdigest()
            hashes.append("file:" + digest)
            inputs.append(f"heredoc:{doc.name}:{digest}")
        heredoc_names = {doc.name for doc in inst.heredocs}
        patterns = [p for p in patterns if p.lstrip("<-").strip("'\"") not in heredoc_names
                    and not p.startswith("<<")]
    local = [p for p in patterns if p not in urls]
    try:
        async with contextlib.AsyncExitStack() as stack:
            found: list[copying.Source] = []
            fetched: list[copying.Source] = []
            if source_image is not None or from_directory or (local and not source_flag):
                root = ctx.dir
                if source_flag:
                    root = await stack.enter_async_context(
                        b.build.source_view(b.stage.index, source_flag))
                    inputs.append(source_image.id if source_image else source_flag)
                if local:
                    found = await asyncio.to_thread(copying.find_sources, root, local,
                                                    in_context=not source_flag, verb=verb)
                for src in found:
                    if source_flag:
                        digest = await asyncio.to_thread(tree_digest, src.host_path)
                    else:
                        digest = await asyncio.to_thread(
                            ctx.digest, os.path.relpath(src.host_path, ctx.dir))
                    hashes.append(("dir:" if src.is_dir else "file:") + digest)
                    inputs.append(f"{src.shown}:{digest}")
            if urls:  # fetched now: their content is part of the key (as the reference)
                downloads = await asyncio.to_thread(tempfile.mkdtemp, prefix="add-",
                                                    dir=b.build.state_dir)
                stack.callback(_rmtree, downloads)
                for url in urls:
                    src = await asyncio.to_thread(copying.download, url, downloads)
                    for message in progress.downloaded(os.path.getsize(src.host_path)):
                        await b.observer.status(b.vertex, message)
                    digest = await asyncio.to_thread(file_digest, src.host_path)
                    fetched.append(src)
                    hashes.append(digest)
                    inputs.append(f"{url}:{digest}")
            if len(hashes) == 1:
                shown_hash = hashes[0]
            else:
                shown_hash = "multi:" + hashlib.sha256("\n".join(hashes).encode()).hexdigest()
            # dockerd 20.10 writes the --chown flag glued to the hash, and dest as written
            chown_text = f"--chown={chown}" if chown else ""
            created_by = imageconfig.nop(
                config, f"{verb} {chown_text}{shown_hash} in {inst.dest} ", spaced=False)

            async def write(fs: StepFS) -> None:
                owner = await asyncio.to_thread(copying.ownership, fs.rootfs, chown, mode)
                sources = found + fetched
                if heredoc_dir:
                    sources += [copying.Source(os.path.join(heredoc_dir, str(i)),
                                               posixpath.basename(d.name) or "heredoc",
                                               False, d.name)
                                for i, d in enumerate(inst.heredocs)]
                local_archives = is_add and not source_flag
                written: set[str] = set()
                await asyncio.to_thread(copying.copy_into, fs.rootfs, sources, dest, owner,
                                        extract_archives=local_archives,
                                        never_extract={s.host_path for s in fetched},
                                        verb=verb, written=written)
                fs.keep_times.update(os.path.relpath(p, fs.rootfs) for p in written)

            await b._commit(created_by, config, inputs=inputs, change=write)
    finally:
        if heredoc_dir:
            await asyncio.to_thread(_rmtree, heredoc_dir)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o644)


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


_HANDLERS: dict[type, Callable[[StageBuilder, Any], Awaitable[None]]] = {
    **{kind: _config_step for kind in _CONFIG_STEPS},
    ins.Label: _label, ins.Maintainer: _maintainer, ins.Cmd: _cmd,
    ins.Entrypoint: _entrypoint, ins.Workdir: _workdir, ins.Run: _run, ins.Copy: _copy,
    ins.Add: _copy,
}
