"""The CNI front door: a pod's network set up, checked and torn down through plugins.

As containerd (go-cni) does: the loopback network ("cni-loopback", interface lo) first,
then the pod network of the config directory on eth0; each plugin of a list is given
the previous one's result (prevResult) and the runtime values it declares a capability
for (runtimeConfig). The ADD result is cached, so a DEL after a restart runs with the
configuration and result of the ADD, even if the directory changed since. The directory
is read on each call, so a new config file takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import InvalidParameter
from ..aio import run_all
from . import cache, confdir, grammar, invoke
from .confdir import ConfigError, NetworkList
from .contract import CNIError, CNINotReady, PodNetwork, PodNetworkResult
from .result import pod_result

log = logging.getLogger(__name__)

LOOPBACK = NetworkList("cni-loopback", "0.3.1", ({"type": "loopback"},))
TEMPLATE_OUTPUT = "10-containerd-net.conflist"


@dataclass(frozen=True)
class _Attachment:
    network: NetworkList
    ifname: str


@dataclass
class _PodLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _live_netns(path: str) -> str:
    """The namespace path while it is still one (pinned by a mount), else "" (blocking)."""
    return path if path and os.path.ismount(path) else ""


class CNI:
    def __init__(self, conf_dir: Path, bin_dirs: Sequence[Path], cache_dir: Path, *,
                 ifname: str = "eth0", conf_template: Path | None = None,
                 plugin_timeout: float = 240.0) -> None:
        self.conf_dir = Path(conf_dir)
        self.bin_dirs = tuple(Path(d) for d in bin_dirs)
        self.cache_dir = Path(cache_dir)
        self.ifname = grammar.ifname(ifname)
        self.conf_template = conf_template
        self.pod_cidr = ""
        self.plugin_timeout = plugin_timeout
        # One operation at a time per pod: a DEL never runs beside the ADD it undoes.
        self._locks: dict[str, _PodLock] = {}

    # -- configuration ---------------------------------------------------------------

    def _network(self) -> NetworkList:
        """The pod network (blocking); CNINotReady when there is none usable."""
        try:
            found = confdir.load(self.conf_dir)
        except ConfigError as e:
            raise CNINotReady(f"cni config uninitialized: {e}") from None
        if found is None:
            raise CNINotReady(f"cni config uninitialized: no network config found in "
                              f"{self.conf_dir}")
        return found

    def _ready(self) -> None:
        network = self._network()
        for plugin in network.plugins + LOOPBACK.plugins:
            try:
                invoke.find_plugin(str(plugin["type"]), self.bin_dirs)
            except CNIError as e:
                raise CNINotReady(f"cni config uninitialized: {e}") from None

    async def status(self) -> None:
        await asyncio.to_thread(self._ready)

    def update_pod_cidr(self, cidr: str) -> None:
        """Kubelet's pod CIDR (UpdateRuntimeConfig): with a config template, written into
        the config directory as containerd does. Of containerd's template fields only
        {{.PodCIDR}} (the first range) is known; a template using others is refused
        rather than half rendered. Blocking."""
        ranges = [r.strip() for r in cidr.split(",") if r.strip()]
        try:
            nets = [ipaddress.ip_network(r, strict=False) for r in ranges]
        except ValueError:
            raise InvalidParameter(f"invalid pod CIDR {cidr!r}") from None
        if not nets or nets == [ipaddress.ip_network(r, strict=False)
                                for r in self.pod_cidr.split(",") if r]:
            return
        if self.conf_template is None:
            self.pod_cidr = ",".join(str(n) for n in nets)
            return
        text = self.conf_template.read_text().replace("{{.PodCIDR}}", str(nets[0]))
        if "{{" in text:
            raise InvalidParameter(f"CNI config template {self.conf_template}: only "
                                   "{{.PodCIDR}} is supported")
        os.makedirs(self.conf_dir, exist_ok=True)
        target = self.conf_dir / TEMPLATE_OUTPUT
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        os.rename(tmp, target)
        self.pod_cidr = ",".join(str(n) for n in nets)

    # -- the runtime values a plugin may ask for -------------------------------------

    @staticmethod
    def _args(net: PodNetwork) -> tuple[tuple[str, str], ...]:
        return (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", net.namespace),
                ("K8S_POD_NAME", net.name), ("K8S_POD_INFRA_CONTAINER_ID", net.pod_id),
                ("K8S_POD_UID", net.uid))

    @staticmethod
    def _capabilities(net: PodNetwork) -> dict[str, Any]:
        caps: dict[str, Any] = {}
        ports = [grammar.port_mapping(pm) for pm in net.port_mappings]
        caps["portMappings"] = [
            {"hostPort": pm.host_port, "containerPort": pm.container_port,
             "protocol": pm.protocol, **({"hostIP": pm.host_ip} if pm.host_ip else {})}
            for pm in ports if pm.host_port > 0]
        if net.bandwidth is not None:
            b = net.bandwidth
            caps["bandwidth"] = {"ingressRate": b.ingress_rate, "ingressBurst": b.ingress_burst,
                                 "egressRate": b.egress_rate, "egressBurst": b.egress_burst}
        if net.dns is not None:
            caps["dns"] = {"servers": list(net.dns.servers), "searches": list(net.dns.searches),
                           "options": list(net.dns.options)}
        return caps

    @staticmethod
    def _plugin_conf(network: NetworkList, plugin: dict[str, Any], caps: dict[str, Any],
                     prev: dict[str, Any] | None) -> dict[str, Any]:
        conf = dict(plugin)
        conf["name"] = network.name
        conf["cniVersion"] = network.cni_version
        if prev is not None:
            conf["prevResult"] = prev
        declared = plugin.get("capabilities")
        if isinstance(declared, dict):
            runtime = {k: caps[k] for k, on in declared.items() if on is True and k in caps}
            if runtime:
                conf["runtimeConfig"] = runtime
        return conf

    # -- ADD, DEL, CHECK over one network list ---------------------------------------

    def _find_all(self, plugins: Sequence[dict[str, Any]]) -> list[Path | CNIError]:
        found: list[Path | CNIError] = []
        for plugin in plugins:
            try:
                found.append(invoke.find_plugin(str(plugin["type"]), self.bin_dirs))
            except CNIError as e:
                found.append(e)
        return found

    async def _run_list(self, command: str, att: _Attachment, net: PodNetwork, netns: str,
                        args: tuple[tuple[str, str], ...], caps: dict[str, Any],
                        prev: dict[str, Any] | None) -> dict[str, Any] | None:
        call = invoke.Call(command, net.pod_id, netns, att.ifname, args)
        plugins = att.network.plugins
        # Every plugin is looked up before the first runs: an ADD never stops half-way on
        # a missing binary, a DEL skips it and still runs the others.
        paths = await asyncio.to_thread(self._find_all, plugins)
        steps = list(zip(plugins, paths, strict=True))
        if command == "DEL":
            steps.reverse()
        failed: CNIError | None = None
        for plugin, path in steps:
            if isinstance(path, CNIError):
                if command != "DEL":
                    raise path
                failed = failed or path
                continue
            conf = self._plugin_conf(att.network, plugin, caps, prev)
            try:
                out = await invoke.run(path, call, conf, self.bin_dirs, att.network.name,
                                       self.plugin_timeout)
            except CNIError as e:
                if command != "DEL":
                    raise
                # A DEL goes on: the plugins after a failing one still release theirs.
                failed = failed or e
                continue
            if command == "ADD" and out is not None:
                prev = out
        if failed is not None:
            raise failed
        return prev

    async def _add(self, att: _Attachment, net: PodNetwork) -> dict[str, Any]:
        args, caps = self._args(net), self._capabilities(net)
        result = await self._run_list("ADD", att, net, net.netns_path, args, caps, None) or {}
        entry = cache.Entry(att.network, args, caps, result)
        await asyncio.to_thread(cache.save, self.cache_dir, net.pod_id, att.ifname,
                                net.netns_path, entry)
        return result

    async def _del(self, att: _Attachment, net: PodNetwork, netns: str) -> None:
        entry = await asyncio.to_thread(cache.load, self.cache_dir, att.network.name,
                                        net.pod_id, att.ifname)
        await self._del_entry(att, entry, net, netns)

    async def _del_entry(self, att: _Attachment, entry: cache.Entry | None, net: PodNetwork,
                         netns: str) -> None:
        if entry is not None:
            network, args, caps = entry.network, entry.args, entry.capabilities
            prev = entry.result if confdir.version_tuple(network.cni_version) >= (0, 4, 0) \
                else None
        else:
            network, args, caps, prev = att.network, self._args(net), self._capabilities(net), None
        await self._run_list("DEL", _Attachment(network, att.ifname), net, netns, args, caps,
                             prev)
        await asyncio.to_thread(cache.remove, self.cache_dir, network.name, net.pod_id,
                                att.ifname)

    # -- the interface ---------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _pod_lock(self, pod_id: str) -> AsyncIterator[None]:
        held = self._locks.get(pod_id)
        if held is None:
            held = self._locks[pod_id] = _PodLock()
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if held.users == 0:
                del self._locks[pod_id]

    async def setup(self, net: PodNetwork) -> PodNetworkResult:
        """ADD the pod to the loopback and the pod network; on a failure what ran is
        undone. InvalidParameter for a value outside its grammar, CNINotReady without a
        config, CNIError when a plugin fails."""
        async with self._pod_lock(net.pod_id):
            return await self._setup(net)

    async def teardown(self, net: PodNetwork) -> None:
        async with self._pod_lock(net.pod_id):
            await self._teardown(net)

    async def check(self, net: PodNetwork) -> None:
        async with self._pod_lock(net.pod_id):
            await self._check(net)

    async def _setup(self, net: PodNetwork) -> PodNetworkResult:
        grammar.pod_network(net)
        if not await asyncio.to_thread(os.path.exists, net.netns_path):
            raise InvalidParameter(f"network namespace {net.netns_path} does not exist")
        network = await asyncio.to_thread(self._network)
        atts = (_Attachment(LOOPBACK, "lo"), _Attachment(network, self.ifname))
        # Both at once (they touch different interfaces), as go-cni's Setup does.
        try:
            results = await run_all(*(self._add(att, net) for att in atts))
        except BaseException:
            # Undo what ran, as containerd tears a failed sandbox's network down.
            for att in reversed(atts):
                with contextlib.suppress(Exception):
                    await self._del(att, net, net.netns_path)
            raise
        return pod_result(results[1], self.ifname)

    async def _teardown(self, net: PodNetwork) -> None:
        """DEL on every network the pod was added to (from the cache), else on the current
        configuration; a namespace already gone is passed as "" (plugins then release
        what lives outside it: addresses, firewall rules)."""
        grammar.pod_network(net, netns_required=False)
        netns = await asyncio.to_thread(_live_netns, net.netns_path)
        try:
            current: NetworkList | None = await asyncio.to_thread(self._network)
        except CNINotReady:
            current = None
        names = await asyncio.to_thread(cache.networks_of, self.cache_dir, net.pod_id,
                                        self.ifname)
        if not names and current is not None:
            names = [current.name]
        # Every network at once (each on its own interface), as for the ADD.
        results = await asyncio.gather(
            *(self._del_network(name, current, net, netns) for name in [*names, LOOPBACK.name]),
            return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, CNIError):
                raise r
        errors = [str(r) for r in results if isinstance(r, CNIError)]
        if errors:
            raise CNIError("; ".join(errors))

    async def _del_network(self, name: str, current: NetworkList | None, net: PodNetwork,
                           netns: str) -> None:
        ifname = "lo" if name == LOOPBACK.name else self.ifname
        entry = await asyncio.to_thread(cache.load, self.cache_dir, name, net.pod_id, ifname)
        fallback = LOOPBACK if name == LOOPBACK.name else current
        if entry is not None:
            target = entry.network
        elif fallback is not None and fallback.name == name:
            target = fallback
        else:
            # An unreadable entry of a network no longer configured: nothing to run.
            log.warning("CNI cache entry of %s for %s is unreadable; dropped", name,
                        net.pod_id)
            await asyncio.to_thread(cache.remove, self.cache_dir, name, net.pod_id, ifname)
            return
        await self._del_entry(_Attachment(target, ifname), entry, net, netns)

    async def _check(self, net: PodNetwork) -> None:
        grammar.pod_network(net)
        network = await asyncio.to_thread(self._network)
        entry = await asyncio.to_thread(cache.load, self.cache_dir, network.name, net.pod_id,
                                        self.ifname)
        if entry is None:
            raise CNIError(f"network {network.name!r} of pod {net.pod_id}: no cached result")
        if entry.network.disable_check \
                or confdir.version_tuple(entry.network.cni_version) < (0, 4, 0):
            return
        prev = entry.result
        call = invoke.Call("CHECK", net.pod_id, net.netns_path, self.ifname, entry.args)
        for plugin in entry.network.plugins:
            path = await asyncio.to_thread(invoke.find_plugin, str(plugin["type"]),
                                           self.bin_dirs)
            conf = self._plugin_conf(entry.network, plugin, entry.capabilities, prev)
            await invoke.run(path, call, conf, self.bin_dirs, entry.network.name,
                             self.plugin_timeout)
