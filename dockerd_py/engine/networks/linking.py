"""Container links as dockerd makes them work.

On the default bridge (HostConfig.Links): the linked container's address under the alias
in /etc/hosts and the legacy environment (links.py); the linked container must exist at
create and run at start. On a user-defined network (EndpointsConfig[net].Links, where the
CLI puts --link): the alias resolves by DNS. aardvark-dns has no per-container view, so
the alias is a record of the network (every container on it resolves it, where dockerd
answers only the linking container). The record is a line of aardvark-dns' config named
after the linking container: netavark's teardown of that container removes it with the
container's own line. Only names of the alias grammar are written there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Mapping
from typing import Any

from ...errors import DaemonError, InternalError, InvalidParameter, NotFound
from ..containers.contract import ContainerRecords
from . import grammar, links
from .contract import NetworkedContainer, network_mode
from .records import Endpoint, Network
from .store import NetworkStore

log = logging.getLogger(__name__)


class Linking:
    def __init__(self, store: NetworkStore, containers: ContainerRecords,
                 aardvark_dir: str) -> None:
        self.store = store
        self.containers = containers
        self.aardvark_dir = aardvark_dir

    # -- create ------------------------------------------------------------------------

    def validate(self, hc: Mapping[str, Any]) -> None:
        """At create, for the default bridge: every linked container exists, and does
        not use the host's network (dockerd's registerLinks)."""
        mode = network_mode(hc)
        if mode != "bridge":
            return
        for link in map(str, hc.get("Links") or ()):
            name, alias = links.parse(link)
            try:
                child = self.containers.get(name)
                while network_mode(child.host_config).startswith("container:"):
                    child = self.containers.get(network_mode(child.host_config)[10:])
            except NotFound as e:
                raise InvalidParameter(f"could not get container for {name}: {e}") from None
            if network_mode(child.host_config) == "host":
                raise InvalidParameter("conflicting options: host type networking can't be "
                                       "used with links. This would result in undefined "
                                       "behavior")

    # -- start on the default bridge ---------------------------------------------------

    def default_bridge(self, c: NetworkedContainer) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The /etc/hosts lines and the environment of the container's links."""
        hosts, env = [], []
        for link in map(str, c.host_config.get("Links") or ()):
            name, alias = links.parse(link)
            try:
                child = self.containers.get(name)
            except DaemonError:
                continue
            full = f"/{c.name}/{alias}"
            if child.state.status not in ("running", "paused"):
                raise InternalError(f"Cannot link to a non running container: /{child.name} "
                                    f"AS {full}")
            ep = self._bridge_endpoint(child.id)
            if ep is None:
                raise InternalError(f"container {child.id} not attached to default bridge "
                                    "network")
            names = " ".join(dict.fromkeys([alias, child.id[:12], child.name]))
            hosts.append(f"{ep.address}\t{names}")
            env += links.environment(full, ep.address, child.config.get("Env") or (),
                                     child.config.get("ExposedPorts") or {})
        return tuple(hosts), tuple(env)

    def _bridge_endpoint(self, cid: str) -> Endpoint | None:
        for nid, ep in self.store.endpoints(cid).items():
            n = self.store.networks.get(nid)
            if n is not None and n.name == "bridge":
                return ep
        return None

    # -- user-defined networks ---------------------------------------------------------

    async def add_records(self, c: NetworkedContainer, n: Network,
                          settings: Mapping[str, Any]) -> None:
        """After the container's setup on n (under n's lock): its link aliases as DNS
        records of n. A link to a container not on n is left out, as dockerd does."""
        lines = []
        for i, link in enumerate(map(str, settings.get("Links") or ())):
            try:
                name, alias = links.parse(link)
                child = self.containers.get(name)
            except DaemonError:
                continue
            ep = self.store.endpoints(child.id).get(n.id)
            if ep is None or not grammar.alias_ok(alias):
                continue
            lines.append(f"{c.id}-link{i} {ep.address} {ep.address6} {alias}\n")
        if lines:
            await asyncio.to_thread(self._append, n.id, lines)

    def _append(self, network_id: str, lines: list[str]) -> None:
        try:
            # netavark's setup wrote the file's first line already
            with open(os.path.join(self.aardvark_dir, network_id), "a") as f:
                f.writelines(lines)
        except FileNotFoundError:
            return
        self._reload()

    def _reload(self) -> None:
        """aardvark-dns reads its config again on SIGHUP (as netavark tells it)."""
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(self.aardvark_dir, "aardvark.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGHUP)

    # -- docker rm --link ----------------------------------------------------------------

    async def remove_link(self, name: str) -> None:
        """`DELETE /containers/<parent>/<alias>?link=1`: the parent forgets the link (its
        /etc/hosts and environment at its next start)."""
        full = name if name.startswith("/") else "/" + name
        parent_name, _, alias = full[1:].rpartition("/")
        if not parent_name:
            self.containers.get(alias)  # NotFound as dockerd, for a name that is nothing
            raise InternalError("Conflict, cannot remove the default link name of the "
                                "container")
        try:
            parent = self.containers.get(parent_name)
        except NotFound:
            raise NotFound(f"No such container: {full[1:]}") from None
        async with self.containers.lock(parent.id):
            parent = self.containers.get(parent.id)
            kept = [link for link in map(str, parent.host_config.get("Links") or ())
                    if links.parse(link)[1] != alias]
            if len(kept) == len(parent.host_config.get("Links") or ()):
                raise NotFound(f"No such container: {full[1:]}")
            await self.containers.save(dataclasses.replace(
                parent, host_config={**parent.host_config, "Links": kept or None}))

    def shown(self, c_name: str, hc: Mapping[str, Any]) -> list[str] | None:
        """HostConfig.Links as dockerd shows them: "/child:/parent/alias"."""
        out = []
        for link in map(str, hc.get("Links") or ()):
            with contextlib.suppress(DaemonError):
                name, alias = links.parse(link)
                out.append(f"/{self.containers.get(name).name}:/{c_name}/{alias}")
        return out or None
