"""Published ports: HostConfig.PortBindings/-P → concrete host ports, and their API shapes.

The allocator is the daemon's (as dockerd's portallocator): a host port is
taken by one container at a time; a port some other process listens on is
refused as dockerd's userland proxy would refuse it. While published, the port
stays bound by a socket the daemon holds (as the proxy holds it): no other
process, and no other daemon beside this one, can take it. Traffic never reaches
that socket: the NAT rules rewrite it before local delivery.
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import InternalError, InvalidParameter

_ANY = "0.0.0.0"


@dataclass(frozen=True)
class Binding:
    """One published port: host (ip, port) → container port/proto."""
    container_port: int
    proto: str
    host_ip: str
    host_port: int

    def key(self) -> tuple[str, str, int]:
        return (self.host_ip or _ANY, self.proto, self.host_port)

    def to_netavark(self) -> dict[str, Any]:
        return {"host_ip": "" if self.host_ip in ("", _ANY) else self.host_ip,
                "container_port": self.container_port, "host_port": self.host_port,
                "range": 1, "protocol": self.proto}

    @classmethod
    def from_netavark(cls, m: Mapping[str, Any]) -> Binding:
        return cls(int(m["container_port"]), str(m["protocol"]), str(m["host_ip"] or _ANY),
                   int(m["host_port"]))


def split_port(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    try:
        number = int(port)
    except ValueError:
        raise InvalidParameter(f"invalid containerPort: {port}") from None
    if not 0 < number < 65536:
        raise InvalidParameter(f"invalid containerPort: {port}")
    return number, proto


def _host_range(text: str) -> tuple[int, int]:
    """"" → (0, 0) (any); "8080" → (8080, 8080); "8080-8090" → the range."""
    if not text:
        return 0, 0
    low, _, high = text.partition("-")
    try:
        start, end = int(low), int(high or low)
    except ValueError:
        raise InvalidParameter(f"invalid hostPort: {text}") from None
    if not (0 <= start <= end < 65536):
        raise InvalidParameter(f"invalid hostPort: {text}")
    return start, end


@dataclass(frozen=True)
class Request:
    """A binding as asked: host port 0 or a range still to be chosen."""
    container_port: int
    proto: str
    host_ip: str
    low: int
    high: int


def requests(config: Mapping[str, Any], hc: Mapping[str, Any]) -> list[Request]:
    """What the container asks to publish: -p entries, and with -P every exposed port."""
    bindings: dict[str, list[dict[str, str]]] = {
        k: list(v or [{}]) for k, v in (hc.get("PortBindings") or {}).items()}
    if hc.get("PublishAllPorts"):
        for key in config.get("ExposedPorts") or {}:
            bindings.setdefault(key, [{}])
    out = []
    for key, entries in bindings.items():
        port, proto = split_port(key)
        for entry in entries:
            low, high = _host_range(str((entry or {}).get("HostPort") or ""))
            host_ip = str((entry or {}).get("HostIp") or "")
            out.append(Request(port, proto, host_ip, low, high))
    return out


def validate(config: Mapping[str, Any], hc: Mapping[str, Any]) -> None:
    for r in requests(config, hc):
        if r.host_ip:
            try:
                socket.inet_pton(socket.AF_INET6 if ":" in r.host_ip else socket.AF_INET,
                                 r.host_ip)
            except OSError:
                raise InvalidParameter(f"invalid IP address: {r.host_ip}") from None


def _ephemeral_range() -> tuple[int, int]:
    """dockerd's: the kernel's ip_local_port_range, else 49153-65535."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    return 49153, 65535


def _reserve(ip: str, proto: str, port: int) -> socket.socket | OSError | None:
    """A socket bound to the port (None for sctp, which is not reserved), or the error."""
    if proto == "sctp":
        return None
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(family, kind)
    try:
        s.bind((ip or _ANY, port))
    except OSError as e:
        s.close()
        return e
    return s


class PortAllocator:
    """The host ports this daemon's containers hold."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str, int], str] = {}   # key → container id
        self._sockets: dict[tuple[str, str, int], socket.socket] = {}

    def _taken(self, ip: str, proto: str, port: int) -> bool:
        ip = ip or _ANY
        for (hip, hproto, hport) in self._held:
            if hproto == proto and hport == port and (hip == ip or _ANY in (hip, ip)):
                return True
        return False

    def hold(self, cid: str, bindings: Iterable[Binding]) -> None:
        """Re-register bindings known to be in place (daemon restart)."""
        for b in bindings:
            self._held[b.key()] = cid
            reserved = _reserve(b.host_ip if b.host_ip != _ANY else "", b.proto, b.host_port)
            if isinstance(reserved, socket.socket):
                self._sockets[b.key()] = reserved

    def release(self, cid: str) -> None:
        for key in [k for k, v in self._held.items() if v == cid]:
            del self._held[key]
            sock = self._sockets.pop(key, None)
            if sock is not None:
                sock.close()

    def _drop(self, key: tuple[str, str, int]) -> None:
        self._held.pop(key, None)
        sock = self._sockets.pop(key, None)
        if sock is not None:
            sock.close()

    def allocate(self, cid: str, reqs: Iterable[Request]) -> list[Binding]:
        """All or nothing: on an error no port stays held for cid."""
        done: list[Binding] = []
        try:
            for r in reqs:
                b, sock = self._one(r)
                self._held[b.key()] = cid
                if sock is not None:
                    self._sockets[b.key()] = sock
                done.append(b)
        except BaseException:
            for b in done:
                self._drop(b.key())
            raise
        return done

    def _one(self, r: Request) -> tuple[Binding, socket.socket | None]:
        ip = r.host_ip or _ANY
        if r.low == r.high and r.low:
            if self._taken(ip, r.proto, r.low):
                raise InternalError(f"Bind for {ip}:{r.low} failed: port is already allocated")
            reserved = _reserve(r.host_ip, r.proto, r.low)
            if isinstance(reserved, OSError):
                reason = ("address already in use" if reserved.errno == errno.EADDRINUSE
                          else (reserved.strerror or str(reserved)).lower())
                raise InternalError(f"Error starting userland proxy: listen {r.proto}4 "
                                    f"{ip}:{r.low}: bind: {reason}")
            return Binding(r.container_port, r.proto, ip, r.low), reserved
        low, high = (r.low, r.high) if r.low else _ephemeral_range()
        candidates = list(range(low, high + 1))
        if not r.low:
            random.shuffle(candidates)
        for port in candidates:
            if self._taken(ip, r.proto, port):
                continue
            reserved = _reserve(r.host_ip, r.proto, port)
            if not isinstance(reserved, OSError):
                return Binding(r.container_port, r.proto, ip, port), reserved
        if r.low:
            raise InternalError(f"Bind for {ip}:{r.low}-{r.high} failed: port is already "
                                "allocated")
        raise InternalError("all ports are allocated")


def inspect_ports(config: Mapping[str, Any], bindings: Iterable[Binding]) -> dict[str, Any]:
    """NetworkSettings.Ports: every exposed or published port, null when not published."""
    out: dict[str, Any] = {key if "/" in key else f"{key}/tcp": None
                           for key in config.get("ExposedPorts") or {}}
    for b in bindings:
        entries = out.get(f"{b.container_port}/{b.proto}") or []
        entries.append({"HostIp": b.host_ip, "HostPort": str(b.host_port)})
        out[f"{b.container_port}/{b.proto}"] = entries
    return out


def summary_ports(config: Mapping[str, Any], bindings: Iterable[Binding]) -> list[dict[str, Any]]:
    """The Ports list of GET /containers/json (docker ps PORTS)."""
    out: list[dict[str, Any]] = []
    published = set()
    for b in bindings:
        published.add((b.container_port, b.proto))
        out.append({"IP": b.host_ip, "PrivatePort": b.container_port,
                    "PublicPort": b.host_port, "Type": b.proto})
    for key in config.get("ExposedPorts") or {}:
        port, proto = split_port(key if "/" in key else f"{key}/tcp")
        if (port, proto) not in published:
            out.append({"PrivatePort": port, "Type": proto})
    return out
