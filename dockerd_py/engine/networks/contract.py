"""The network service contract: networks, and containers' endpoints on them.

A *network* is a bridge on the host with a subnet, made by `docker network create`,
or one of the three predefined networks the daemon makes itself: ``bridge`` (the
default bridge, unless the daemon runs with ``--bridge none``), ``host`` and ``none``.
An *endpoint* is one container's attachment to one network while the container
runs: an interface inside the container's network namespace, an address from the
network's subnet, a MAC, and the host ports published through it.

A container's *network mode* (``HostConfig.NetworkMode``, see `network_mode`) says
where its namespace comes from:
  * ``bridge`` (the client's ``default``) or a network's name: a namespace of its
    own, with one endpoint per network it is connected to; the mode's network is
    ``eth0`` and owns the default route and the published ports;
  * ``host``: the host's namespace, no endpoint;
  * ``none``: a fresh namespace with loopback only, made by the runtime;
  * ``container:<id>``: the namespace of another, running, container.

Networks:
  * ``create(body)`` checks a NetworkCreateRequest and makes a bridge network
    (Conflict for a name in use, Forbidden for an overlapping subnet, a bridge name
    in use or a second host/null network, NotFound for another driver or IPAM
    driver). The subnet is the one asked for or the first free one of the daemon's
    address pools.
  * ``get(ref)`` finds a network by full ID, name, or unique ID prefix.
  * ``remove(ref)`` refuses predefined networks (Forbidden) and networks with
    active endpoints (Conflict); ``prune(keep)`` removes the unused networks that
    ``keep`` selects and returns their names.

Containers (``ContainerNetworking``, what the container service calls):
  * at create, ``validate(host_config, networking, config)`` checks addresses,
    aliases, MACs and published ports, and returns the NetworkingConfig to store
    (each endpoint with the NetworkID of its network). A network that does not
    exist yet fails the start, not the create, as with dockerd.
  * at start, ``attach(c)`` makes the container's namespace and endpoints
    (addresses, host ports, interfaces) and returns the `Attachment` the runtime
    and the /etc files need. A failure undoes what it made.
  * at exit, ``detach(cid, name)`` takes them apart. It is idempotent, a no-op for a
    container that has no endpoint, and may finish in the background: the addresses
    stay reserved until the interfaces are gone, and the next attach of the same
    container waits for it.
  * while the container exists, ``connect``/``disconnect`` change the networks it is
    configured for (stored in its record), and its endpoints at once if it runs.

A build step is attached and detached the same way under an ID that names no
container record (``StepNetworks``); its endpoints stand for it in network inspect
and in remove's "active endpoints" error.

Endpoints are recorded before the interfaces are set up, so after a crash or a
daemon restart the service knows what it made: the endpoints of containers that
kept running stay, and those of containers that exited meanwhile are torn down.

Events: ``create``, ``destroy``, ``connect`` and ``disconnect`` of type network.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .ports import Binding
from .records import Endpoint, Network

__all__ = ["Attacher", "Attachment", "Binding", "ContainerNetworking", "Connector", "Endpoint",
           "EndpointView", "Linker", "Network", "NetworkAdmin", "NetworkLookup", "NetworkValidator",
           "NetworkedContainer", "Networks", "StepNetworks", "network_mode"]


def network_mode(hc: Mapping[str, Any]) -> str:
    """A container's network mode; "default" (or none given) means "bridge"."""
    mode = str(hc.get("NetworkMode") or "default")
    return "bridge" if mode == "default" else mode


@dataclass(frozen=True)
class Attachment:
    """What the runtime and /etc files need from a started container's networking."""
    netns_path: str | None                  # None: a new namespace; "host"
    addresses: tuple[str, ...] = ()        # for /etc/hosts
    nameservers: tuple[str, ...] | None = None  # aardvark on user networks
    link_hosts: tuple[str, ...] = ()       # "ip\tname alias" lines for --link
    link_env: tuple[str, ...] = ()         # the legacy variables of --link (links.py)
    host_gateway: str = ""                 # what --add-host name:host-gateway means


class NetworkedContainer(Protocol):
    """What attach() reads of a container (or of a build step standing for one)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]:
        """Its Config: ExposedPorts, MacAddress."""

    @property
    def host_config(self) -> Mapping[str, Any]:
        """Its HostConfig: NetworkMode, PortBindings, PublishAllPorts, Links, Dns."""

    @property
    def networking(self) -> Mapping[str, Any]:
        """The NetworkingConfig validate() returned: {"EndpointsConfig": {name: ...}}."""


class NetworkLookup(Protocol):
    def get(self, ref: str) -> Network:
        """By full ID, name, or unique ID prefix (NotFound: "network REF not found")."""

    def list(self) -> builtins.list[Network]:
        """Every network, oldest first."""


class NetworkAdmin(NetworkLookup, Protocol):
    """The verbs of `docker network` that act on networks."""

    async def create(self, body: dict[str, Any]) -> Network: ...

    async def remove(self, ref: str) -> None: ...

    async def prune(self, keep: Callable[[Network], bool]) -> builtins.list[str]:
        """Remove the unused, not predefined networks `keep` selects; their names."""


class Connector(Protocol):
    """`docker network connect` and `disconnect`."""

    async def connect(self, ref: str, container_ref: str, settings: dict[str, Any]) -> None: ...

    async def disconnect(self, ref: str, container_ref: str, force: bool) -> None:
        """force: a container that no longer exists leaves its endpoints too."""


class EndpointView(Protocol):
    """The endpoints that exist now, for inspect, ps and network inspect."""

    @property
    def netns_root(self) -> str:
        """Where containers' namespaces are pinned: <netns_root>/<container id>."""

    def endpoints(self, cid: str) -> dict[str, Endpoint]:
        """Network ID -> the container's endpoint on it."""

    def network_endpoints(self, nid: str, *, reserved: bool = False
                          ) -> builtins.list[Endpoint]:
        """The containers' endpoints on a network; reserved: also those still being torn
        down and the daemon's own (every endpoint holding an address)."""

    def containers_on(self, n: Network) -> builtins.list[str]:
        """IDs of the containers (and build steps) with an endpoint on the network."""

    def bindings(self, cid: str) -> builtins.list[Binding]:
        """The host ports published for the container."""


class NetworkValidator(Protocol):
    def validate(self, hc: dict[str, Any], networking: dict[str, Any],
                 config: dict[str, Any]) -> dict[str, Any]:
        """Check a new container's networking; the NetworkingConfig to store."""


class Attacher(Protocol):
    async def attach(self, c: NetworkedContainer) -> Attachment: ...

    async def detach(self, cid: str, name: str = "") -> None: ...


class ContainerNetworking(NetworkValidator, Attacher, Protocol):
    """What the container service needs: check at create, attach and detach."""


class StepNetworks(NetworkLookup, Attacher, Protocol):
    """What a build's RUN step needs: find its network, attach and detach."""


class Linker(Protocol):
    """Legacy links as the API shows and changes them."""

    async def remove_link(self, name: str) -> None:
        """`docker rm --link /parent/alias`: the parent container forgets that link."""

    def links_shown(self, name: str, host_config: Mapping[str, Any]) -> builtins.list[str] | None:
        """HostConfig.Links of the container called name, as dockerd shows them."""


class Networks(NetworkAdmin, Connector, EndpointView, ContainerNetworking, Linker, Protocol):
    """The whole service."""
