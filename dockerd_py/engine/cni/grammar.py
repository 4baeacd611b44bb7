"""The grammars of every value that reaches a CNI plugin's environment or stdin.

CNI_ARGS is `K=V;K=V`: a ";" or "=" in a pod name would add an argument of the
client's choosing, so each value is held to Kubernetes' own grammar. Pod names follow
RFC 1123 subdomains without the lower-case rule (critest names its pods
"PodSandbox-for-..."; kubelet only ever sends lower case), namespaces RFC 1123 labels.
"""

from __future__ import annotations

import ipaddress
import os
import re

from ...errors import InvalidParameter
from .contract import PodNetwork, PortMapping

_HEX_ID = re.compile(r"[0-9a-f]{1,64}")
_SUBDOMAIN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# Kubernetes UIDs are UUIDs; CRI clients send free-form ones ("cri-test-uid-<uuid>").
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# A plugin type is a file name in a CNI_PATH directory; an interface name a Linux one.
_PLUGIN_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
PROTOCOLS = ("tcp", "udp", "sctp")


def pod_id(value: str) -> str:
    if not _HEX_ID.fullmatch(value):
        raise InvalidParameter(f"invalid pod sandbox id {value!r}: must be lower-case hex")
    return value


def pod_name(value: str) -> str:
    if len(value) > 253 or not _SUBDOMAIN.fullmatch(value):
        raise InvalidParameter(f"invalid pod name {value!r}: must be a DNS subdomain "
                               "(letters, digits, '-' and '.', at most 253 characters)")
    return value


def namespace(value: str) -> str:
    if not _LABEL.fullmatch(value):
        raise InvalidParameter(f"invalid pod namespace {value!r}: must be a DNS label "
                               "(lower-case letters, digits and '-', at most 63 characters)")
    return value


def uid(value: str) -> str:
    if not _UID.fullmatch(value):
        raise InvalidParameter(f"invalid pod uid {value!r}")
    return value


def plugin_type(value: object) -> str:
    if not isinstance(value, str) or not _PLUGIN_TYPE.fullmatch(value):
        raise InvalidParameter(f"invalid CNI plugin type {value!r}")
    return value


def ifname(value: str) -> str:
    if not _IFNAME.fullmatch(value) or value in (".", ".."):
        raise InvalidParameter(f"invalid interface name {value!r}")
    return value


def netns_path(value: str) -> str:
    if not value or "\0" in value or not os.path.isabs(value) \
            or os.path.normpath(value) != value or len(value) > 4096:
        raise InvalidParameter(f"invalid network namespace path {value!r}")
    return value


def port_mapping(pm: PortMapping) -> PortMapping:
    proto = pm.protocol.lower()
    if proto not in PROTOCOLS:
        raise InvalidParameter(f"invalid port mapping protocol {pm.protocol!r}")
    for what, port in (("container", pm.container_port), ("host", pm.host_port)):
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise InvalidParameter(f"invalid {what} port {port!r}")
    if pm.host_port and not pm.container_port:
        raise InvalidParameter("a host port needs a container port")
    if pm.host_ip:
        try:
            ipaddress.ip_address(pm.host_ip)
        except ValueError:
            raise InvalidParameter(f"invalid host IP {pm.host_ip!r}") from None
    return PortMapping(proto, pm.container_port, pm.host_port, pm.host_ip)


def pod_network(net: PodNetwork, *, netns_required: bool = True) -> None:
    pod_id(net.pod_id)
    pod_name(net.name)
    namespace(net.namespace)
    uid(net.uid)
    if netns_required or net.netns_path:
        netns_path(net.netns_path)
    for pm in net.port_mappings:
        port_mapping(pm)
    if net.bandwidth is not None:
        b = net.bandwidth
        for v in (b.ingress_rate, b.ingress_burst, b.egress_rate, b.egress_burst):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InvalidParameter(f"invalid bandwidth value {v!r}")
    if net.dns is not None:
        for server in net.dns.servers:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise InvalidParameter(f"invalid DNS server {server!r}") from None
        for word in net.dns.searches + net.dns.options:
            if not word or any(c.isspace() or c == "\0" for c in word) or len(word) > 253:
                raise InvalidParameter(f"invalid DNS search or option {word!r}")
