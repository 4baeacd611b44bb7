"""Network and endpoint records, and their rows in the metadata database.

A network is what `docker network create` made (or a predefined one); an
endpoint is one container's attachment to one network while the container
runs: its interface, address and MAC, kept so that a restarted daemon can
tear down exactly what it set up.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

PREDEFINED = ("bridge", "host", "none")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"  # the host interface asked for


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    driver: str                              # bridge | host | null
    created: str
    bridge: str = ""                         # the host interface (bridge driver)
    subnets: list[dict[str, str]] = field(default_factory=list)  # IPAM.Config entries
    user_subnets: bool = False               # the client chose the subnet (--ip allowed)
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] = field(default_factory=dict)
    ipam_driver: str = "default"

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def dns_enabled(self) -> bool:
        """Name resolution is for user-defined networks; the default bridge keeps links."""
        return self.driver == "bridge" and self.name != "bridge"


@dataclass(frozen=True)
class Endpoint:
    container_id: str
    network_id: str
    endpoint_id: str
    interface: str                           # eth0, eth1, ... inside the container
    address: str                             # 172.18.0.2
    prefix_len: int
    gateway: str
    mac: str = ""
    aliases: list[str] = field(default_factory=list)
    dns_names: list[str] = field(default_factory=list)
    static: bool = False                     # --ip: kept across restarts
    ports: list[dict[str, Any]] = field(default_factory=list)  # netavark port_mappings
    plain: bool = False                      # made by plainveth, not netavark
    address6: str = ""                       # on a network with IPv6 enabled
    prefix_len6: int = 0
    gateway6: str = ""
    link_local: list[str] = field(default_factory=list)  # IPAMConfig.LinkLocalIPs, added
    extra_addresses: list[str] = field(default_factory=list)  # in the network's other subnets


def save_network(conn: sqlite3.Connection, n: Network) -> None:
    conn.execute("INSERT OR REPLACE INTO networks(id, name, data) VALUES (?, ?, ?)",
                 (n.id, n.name, json.dumps(asdict(n))))


def delete_network(conn: sqlite3.Connection, nid: str) -> None:
    conn.execute("DELETE FROM networks WHERE id = ?", (nid,))


def load_networks(conn: sqlite3.Connection) -> list[Network]:
    return [Network(**json.loads(r["data"])) for r in conn.execute("SELECT data FROM networks")]


def save_endpoint(conn: sqlite3.Connection, e: Endpoint) -> None:
    conn.execute("INSERT OR REPLACE INTO network_endpoints(container_id, network_id, data) "
                 "VALUES (?, ?, ?)", (e.container_id, e.network_id, json.dumps(asdict(e))))


def delete_endpoint(conn: sqlite3.Connection, cid: str, nid: str) -> None:
    conn.execute("DELETE FROM network_endpoints WHERE container_id = ? AND network_id = ?",
                 (cid, nid))


def load_endpoints(conn: sqlite3.Connection) -> list[Endpoint]:
    return [Endpoint(**json.loads(r["data"]))
            for r in conn.execute("SELECT data FROM network_endpoints")]
