"""RUN: the command, its BuildKit flags (--mount, --network, --security), and the
step that runs it in a build container (run.py) with its mounts (runmounts.py)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os

from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile import runflags
from dockerd_py.dockerfile.lexer import expand as expand_word
from dockerd_py.dockerfile.runflags import Mount
from dockerd_py.errors import InvalidParameter

from . import imageconfig, metadata, runmounts
from .layer import StepFS
from .observer import STDERR, STDOUT
from .request import NETWORK_HOST, SECURITY_INSECURE
from .run import RunOptions
from .run import run as run_command
from .runmounts import prepare as prepare_mounts
from .scope import StageScope, StepFailed


def _run_command(b: StageScope, inst: ins.Run) -> list[str]:
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


def _run_mounts(b: StageScope, inst: ins.Run) -> list[Mount]:
    env = b.env_for_expansion()
    escape = b.build.dockerfile.escape
    try:
        return runflags.parse_mounts(inst.flags.get("mount", ""),
                                     lambda word: expand_word(word, env, escape))
    except ins.DockerfileError as e:
        raise InvalidParameter(e.message) from None


def _run_options(b: StageScope, inst: ins.Run) -> tuple[RunOptions, bool]:
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


async def run_step(b: StageScope, inst: ins.Run) -> None:
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
        async with prepare_mounts(b.build, b.stage.index, mounts, fs.rootfs, fs.state_dir,
                                     workdir, f"exec {shown}") as prepared:
            step_config = run_config
            if prepared.env:
                step_config = dict(run_config, Env=list(run_config["Env"]) + prepared.env)
            try:
                code = await run_command(runtime, b.backend.networks, fs, step_config,
                                         run_options, output, prepared.mounts, privileged)
            finally:
                if prepared.stubs:
                    await asyncio.to_thread(runmounts.remove_stubs, prepared.stubs)
        if code != 0:
            raise StepFailed(f"The command '{shown}' returned a non-zero code: {code}", code)

    await b._commit(created_by, config, inputs=inputs, change=execute, container_lines=True,
                    runs_command=True)

