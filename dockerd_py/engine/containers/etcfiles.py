"""The /etc/hostname, /etc/hosts and /etc/resolv.conf the daemon manages per container.

Their lines are made of client strings (--hostname, --add-host, --link, --dns,
--dns-search, --dns-option): validate() refuses at create any value that would not be
one word of one line, and the writers leave out such a value from an older record, so
a client string never adds a line or a field.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import InvalidParameter

log = logging.getLogger(__name__)

_HOSTS_BASE = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


def word(value: str) -> bool:
    """One field of a hosts or resolv.conf line: printable, no whitespace."""
    return bool(value) and value.isprintable() and not any(c.isspace() for c in value)


def is_ip(value: str) -> bool:
    """An IPv4 or IPv6 address as Go's net.ParseIP reads one (no zone)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
            return True
        except (OSError, ValueError):
            continue
    return False


def _extra_host(entry: str) -> tuple[str, str] | None:
    """(name, ip) of an --add-host entry "name:ip" (ip may be host-gateway)."""
    name, sep, ip = entry.partition(":")
    ip = ip.strip()
    if not sep or not word(name) or not (ip == "host-gateway" or is_ip(ip)):
        return None
    return name, ip


def validate(config: Mapping[str, Any], hc: Mapping[str, Any]) -> None:
    """At create: what the files are made of, in dockerd's words where it has any."""
    q = json.dumps
    hostname = str(config.get("Hostname") or "")
    if hostname and not word(hostname):
        raise InvalidParameter(f"invalid hostname {q(hostname)}: whitespace and control "
                               "characters are not allowed")
    for entry in map(str, hc.get("ExtraHosts") or ()):
        name, sep, ip = entry.partition(":")
        if not sep or not word(name):
            raise InvalidParameter(f"bad format for add-host: {q(entry)}")
        if _extra_host(entry) is None:
            raise InvalidParameter(f"invalid IP address in add-host: {q(ip)}")
    for link in map(str, hc.get("Links") or ()):
        if not all(word(part) for part in link.split(":", 1)):
            raise InvalidParameter(f"bad format for links: {link}")
    for server in map(str, hc.get("Dns") or ()):
        if not is_ip(server):
            raise InvalidParameter(f"IP address is not correctly formatted: {server}")
    for domain in map(str, hc.get("DnsSearch") or ()):
        if not word(domain):
            raise InvalidParameter(f"{domain} is not a valid domain")
    for option in map(str, hc.get("DnsOptions") or ()):
        if not word(option):
            raise InvalidParameter(f"invalid DNS option {q(option)}: whitespace and control "
                                   "characters are not allowed")


def _words(values: Sequence[Any], what: str) -> list[str]:
    """The values that are one word each; any other (a record from before validate())
    is left out of the file, and logged."""
    out = []
    for v in map(str, values):
        if word(v):
            out.append(v)
        else:
            log.warning("leaving %s %r out of a container's /etc files", what, v)
    return out


def _host_resolv() -> list[str]:
    try:
        with open("/etc/resolv.conf") as f:
            return f.read().splitlines()
    except OSError:
        return []


# What dockerd writes when none of the host's resolvers can serve a container.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")


def resolv_conf(hc: Mapping[str, Any], host_network: bool,
                nameservers: Sequence[str] | None = None,
                host_lines: Sequence[str] | None = None) -> str:
    """The host's resolv.conf (host_lines: its lines, read when None), with --dns,
    --dns-search and --dns-option overriding it. Off the host's network, loopback
    resolvers do not answer and IPv6 ones are out of reach (networks are IPv4 only):
    both dropped, and dockerd's fallback servers used when nothing is left.
    nameservers: the network's own resolver (user-defined networks) in their place."""
    lines = _host_resolv() if host_lines is None else list(host_lines)
    servers = [s for s in _words(nameservers if nameservers is not None
                                 else hc.get("Dns") or [], "DNS server") if is_ip(s)]
    search = _words(hc.get("DnsSearch") or [], "DNS search domain")
    options = _words(hc.get("DnsOptions") or [], "DNS option")
    if not servers:
        servers = [ln.split()[1] for ln in lines
                   if ln.startswith("nameserver") and len(ln.split()) > 1]
        if not host_network:
            servers = [s for s in servers if not s.startswith("127.") and ":" not in s]
            servers = servers or list(FALLBACK_NAMESERVERS)
    if not search:
        search = [w for ln in lines if ln.startswith("search") for w in ln.split()[1:]]
    if not options:
        options = [w for ln in lines if ln.startswith("options") for w in ln.split()[1:]]
    out = [f"nameserver {s}" for s in servers]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def hosts(hostname: str, extra: Sequence[str], addresses: Sequence[str],
          link_hosts: Sequence[str] = (), host_gateway: str = "") -> str:
    text = _HOSTS_BASE
    for entry in extra:  # --add-host name:ip
        parsed = _extra_host(str(entry))
        if parsed is None:
            log.warning("leaving add-host %r out of a container's /etc/hosts", entry)
            continue
        name, ip = parsed
        if ip == "host-gateway":
            if not host_gateway:
                continue
            ip = host_gateway
        text += f"{ip}\t{name}\n"
    for line in link_hosts:  # --link on the default bridge: "ip\tname alias"
        if all(word(w) for w in line.replace("\t", " ").split(" ")):
            text += line + "\n"
    if word(hostname):
        for ip in addresses:
            text += f"{ip}\t{hostname}\n"
    return text


def write(directory: str, config: Mapping[str, Any], hc: Mapping[str, Any],
          addresses: Sequence[str] = (), *, nameservers: Sequence[str] | None = None,
          link_hosts: Sequence[str] = (), host_gateway: str = "") -> dict[str, str]:
    """Write the three files into directory; returns container path -> host path."""
    host_network = hc.get("NetworkMode") == "host"
    hostname = config.get("Hostname") or ""
    if host_network:
        hostname = os.uname().nodename
    files = {
        "/etc/hostname": (hostname if word(hostname) else "") + "\n",
        "/etc/hosts": hosts(hostname, hc.get("ExtraHosts") or [], addresses, link_hosts,
                            host_gateway),
        "/etc/resolv.conf": resolv_conf(hc, host_network, nameservers),
    }
    out = {}
    for path, text in files.items():
        target = os.path.join(directory, os.path.basename(path))
        with open(target + ".tmp", "w") as f:
            f.write(text)
            os.fchmod(f.fileno(), 0o644)  # read by any user in the container
        os.rename(target + ".tmp", target)
        out[path] = target
    return out
