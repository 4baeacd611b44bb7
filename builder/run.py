"""RUN: one command in a build container, in the foreground.

The fast path: no monitor, no container record. The OCI spec comes from the
same generator `docker run` uses (runtime/spec.py: capabilities, seccomp,
masked paths, cgroup under dockerd-py/), and the runtime's foreground `run`
(`OCIRuntime.run`) executes it with its stdout and stderr piped straight into
the progress stream. The runtime's own log goes to a file, so its messages never
mix with the command's output. The container is therefore never listed by
`docker ps -a`; on cancellation (client gone, build failed elsewhere) it is
killed and deleted.

Networking as the reference's builder: the default bridge unless another network
is named (`--network NAME`, `host`, `none`; the API refuses `container:`,
and a daemon without a default bridge gives loopback only, as dockerd). The step is
attached by the network service like a container (a pinned namespace, an address,
a veth) under its snapshot key, and detached when the step ends, fails or is
cancelled, so nothing of it outlives the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockerd_py.engine.containers import etcfiles
from dockerd_py.engine.containers.bundle import path_in_root, read_in_root
from dockerd_py.engine.modes import makedirs
from dockerd_py.engine.networks.contract import Attachment, StepNetworks
from dockerd_py.engine.runtime.hostlimits import host_limits
from dockerd_py.engine.runtime.oci import ForegroundRun, OCIRuntime
from dockerd_py.engine.runtime.spec import MountSpec, SpecError, SpecInput, build_spec
from dockerd_py.engine.runtime.users import resolve_user
from dockerd_py.engine.volumes.tree import copy_into_empty
from dockerd_py.errors import InvalidParameter, NotFound

from .copy import Ownership, make_dirs, resolve_in_root
from .layer import StepFS

Output = Callable[[str, bytes], Awaitable[None]]  # ("stdout" | "stderr", data)
_CGROUP_PARENT = "dockerd-py"
_READ = 1 << 16


@dataclass(frozen=True)
class RunOptions:
    network: str = "bridge"               # "bridge" | "host" | "none" | a network's name
    shm_size: int = 0
    ulimits: Sequence[Mapping[str, Any]] = ()
    extra_hosts: Sequence[str] = ()
    cgroup_parent: str = ""
    resources: Mapping[str, Any] = field(default_factory=dict)  # Memory, CpuShares, ...


@dataclass(frozen=True)
class StepContainer:
    """A build step as the network service's attach()/detach() see a container."""
    id: str
    name: str
    config: Mapping[str, Any]
    host_config: Mapping[str, Any]
    networking: Mapping[str, Any] = field(default_factory=dict)


def host_config(opts: RunOptions) -> dict[str, Any]:
    hc: dict[str, Any] = {"NetworkMode": opts.network, "ExtraHosts": list(opts.extra_hosts)}
    if opts.shm_size:
        hc["ShmSize"] = opts.shm_size
    if opts.ulimits:
        hc["Ulimits"] = list(opts.ulimits)
    if opts.cgroup_parent:
        hc["CgroupParent"] = opts.cgroup_parent
    hc.update(opts.resources)
    return hc


def _prepare(fs: StepFS, config: Mapping[str, Any], hc: Mapping[str, Any],
             net: Attachment | None, extra: Sequence[MountSpec] = ()) -> str:
    """Write the bundle; returns its directory (blocking). net: the step's attachment
    (None: the mode alone decides, host or a private namespace)."""
    bundle = fs.state_dir
    workdir = str(config.get("WorkingDir") or "/")
    target = path_in_root(fs.rootfs, workdir)
    if target is not None and not os.path.isdir(target):
        makedirs(target, 0o755)  # dockerd creates it at container create
    if net is None:
        etc = etcfiles.write(bundle, config, hc)
        netns_path = "host" if hc.get("NetworkMode") == "host" else None
    else:
        etc = etcfiles.write(bundle, config, hc, net.addresses, nameservers=net.nameservers,
                             link_hosts=net.link_hosts, host_gateway=net.host_gateway)
        netns_path = net.netns_path
    if hc.get("NetworkMode") == "host":  # the host's own names, as dockerd gives it
        with contextlib.suppress(OSError):
            shutil.copyfile("/etc/hosts", etc["/etc/hosts"])
    volumes = _volumes(fs, config, bundle) + list(extra)
    try:
        user = resolve_user(str(config.get("User") or ""), read_in_root(fs.rootfs, "/etc/passwd"),
                            read_in_root(fs.rootfs, "/etc/group"))
        spec = build_spec(SpecInput(
            container_id=fs.key, rootfs=fs.rootfs, config=config, host_config=hc,
            host=host_limits(), user=user, etc_files=etc, mounts=volumes,
            netns_path=netns_path,
            cgroup_parent=_CGROUP_PARENT))
    except SpecError as e:
        raise InvalidParameter(str(e)) from None
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    return bundle


def _volumes(fs: StepFS, config: Mapping[str, Any], bundle: str) -> list[MountSpec]:
    """The image's VOLUMEs, as anonymous volumes of the build container: a scratch copy
    of what the image has there, so that what RUN writes to them is discarded (as the
    reference); the mount points themselves are created in the image. The copy is the
    one container starts make (device nodes and FIFOs made anew, never opened)."""
    out = []
    for index, path in enumerate(sorted(config.get("Volumes") or {})):
        target = resolve_in_root(fs.rootfs, path)
        rel = os.path.relpath(target, fs.rootfs)
        make_dirs(fs.rootfs, "" if rel == "." else rel, Ownership())
        scratch = os.path.join(bundle, f"volume-{index}")
        os.mkdir(scratch, 0o700)
        copy_into_empty(target, scratch)
        out.append(MountSpec(path, scratch, "volume"))
    return out


async def run(runtime: OCIRuntime, networks: StepNetworks, fs: StepFS,
              config: Mapping[str, Any], opts: RunOptions, output: Output,
              mounts: Sequence[MountSpec] = (), privileged: bool = False) -> int:
    """Run config's Cmd (Entrypoint cleared) in the step's root filesystem, with the
    extra mounts (RUN --mount); returns the exit code. Raises InternalError when the
    runtime cannot start it."""
    hc = host_config(opts)
    if privileged:  # RUN --security=insecure, entitled
        hc["Privileged"] = True
    if not _has_network(networks, str(hc["NetworkMode"])):
        return await _run_attached(runtime, fs, config, hc, None, output, mounts)
    step = StepContainer(fs.key, fs.key[:12], config, hc)
    try:
        net = await networks.attach(step)
        return await _run_attached(runtime, fs, config, hc, net, output, mounts)
    finally:  # also on failure and cancellation: attach() undoes its own partial work
        await asyncio.shield(networks.detach(step.id, step.name))


def _has_network(networks: StepNetworks, mode: str) -> bool:
    """False for the default bridge of a daemon started with `--bridge none`: there the
    reference runs the step with loopback only. Any other name is looked up at attach,
    which fails the step with the reference's "network NAME not found"."""
    if mode not in ("bridge", "default"):
        return True
    try:
        networks.get("bridge")
    except NotFound:
        return False
    return True


async def _run_attached(runtime: OCIRuntime, fs: StepFS, config: Mapping[str, Any],
                        hc: Mapping[str, Any], net: Attachment | None, output: Output,
                        mounts: Sequence[MountSpec] = ()) -> int:
    bundle = await asyncio.to_thread(_prepare, fs, config, hc, net, mounts)
    step = await runtime.run(fs.key, bundle, os.path.join(bundle, "runtime.log"))
    try:
        await asyncio.gather(_pump(step.stdout, "stdout", output),
                             _pump(step.stderr, "stderr", output, step))
        code = await step.wait()
    except BaseException:
        await step.kill()
        raise
    if code != 0:
        failure = await asyncio.to_thread(step.failure)
        if failure is not None:
            await step.delete()
            raise failure
    await step.delete()
    return code


async def _pump(stream: asyncio.StreamReader, name: str, output: Output,
                step: ForegroundRun | None = None) -> None:
    while data := await stream.read(_READ):
        if step is not None and await step.is_runtime_output(data):
            continue  # the runtime's own last words share the command's stderr
        await output(name, data)
