"""The /etc/hostname, /etc/hosts and /etc/resolv.conf the daemon manages per container."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

_HOSTS_BASE = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


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
    servers = list(nameservers if nameservers is not None else hc.get("Dns") or [])
    search = list(hc.get("DnsSearch") or [])
    options = list(hc.get("DnsOptions") or [])
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
        name, _, ip = entry.partition(":")
        if ip == "host-gateway" and host_gateway:
            ip = host_gateway
        text += f"{ip}\t{name}\n"
    for line in link_hosts:  # --link on the default bridge
        text += line + "\n"
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
        "/etc/hostname": hostname + "\n",
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
