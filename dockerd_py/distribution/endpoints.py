"""Which URLs serve a registry, and with what TLS, as dockerd decides.

* Docker Hub (``docker.io``): each ``registry-mirrors`` entry first, then
  ``https://registry-1.docker.io``.
* Any other host: ``https://<host>``; if the registry is insecure, TLS is not
  verified and ``http://<host>`` is tried after it.
* Before both, the host's ``registry-hosts`` mirrors, in order (containerd's hosts
  configuration): a mirror serves the same repository paths as the registry.
* Insecure means: named in ``insecure-registries`` (``host[:port]``), or one
  of its addresses is in a CIDR listed there or in 127.0.0.0/8 / ::1 (always
  insecure, which is how a local registry works without setup).
* TLS material comes from ``/etc/docker/certs.d/<host[:port]>/``: ``*.crt``
  are extra CA roots, ``*.cert`` + ``*.key`` client certificate pairs.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

from ..engine.reference import DEFAULT_DOMAIN
from ..errors import InvalidParameter

CERTS_DIR = "/etc/docker/certs.d"
HUB_URL = "https://registry-1.docker.io"
HUB_LOGIN_ADDRESS = "https://index.docker.io/v1/"
_ALWAYS_INSECURE = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Endpoint:
    url: str                           # scheme://host[:port], no trailing slash
    ssl: ssl.SSLContext | bool         # False for plain HTTP
    mirror: bool = False

    @property
    def plain_http(self) -> bool:
        return self.url.startswith("http://")


@dataclass(frozen=True)
class RegistrySettings:
    mirrors: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    # registry-hosts: (registry host, its mirror URLs in order), hosts in canonical form.
    hosts: tuple[tuple[str, tuple[str, ...]], ...] = ()
    certs_dir: str = CERTS_DIR
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5


def _strip_scheme(entry: str) -> str:
    for scheme in ("http://", "https://"):
        if entry.lower().startswith(scheme):
            return entry[len(scheme):]
    return entry


def _insecure_rules(entries: Sequence[str]) -> tuple[set[str], list[_IPNetwork]]:
    names: set[str] = set()
    nets: list[_IPNetwork] = list(_ALWAYS_INSECURE)
    for raw in entries:
        entry = _strip_scheme(raw.strip()).rstrip("/")
        try:
            nets.append(ipaddress.ip_network(entry, strict=False) if "/" in entry
                        else ipaddress.ip_network(entry))
            if "/" not in entry:
                names.add(entry)
        except ValueError:
            names.add(entry)
    return names, nets


def _host_only(host: str) -> str:
    if host.startswith("["):
        return host[1:host.index("]")] if "]" in host else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


def is_insecure(host: str, settings: RegistrySettings) -> bool:
    """Blocking (may resolve the name): call from a thread."""
    names, nets = _insecure_rules(settings.insecure)
    if host in names:
        return True
    name = _host_only(host)
    try:
        addrs = [ipaddress.ip_address(name)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except OSError:
            return False
        addrs = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    return any(addr in net for addr in addrs for net in nets)


def tls_context(host: str, *, verify: bool, certs_dir: str) -> ssl.SSLContext:
    """System roots plus certs.d/<host>/*.crt; client pairs *.cert/*.key (blocking)."""
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    directory = os.path.join(certs_dir, host)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return ctx
    for name in names:
        path = os.path.join(directory, name)
        try:
            if name.endswith(".crt"):
                ctx.load_verify_locations(cafile=path)
            elif name.endswith(".cert"):
                key = path[:-5] + ".key"
                if not os.path.exists(key):
                    raise InvalidParameter(f"missing key {os.path.basename(key)} for client "
                                           f"certificate {name}. CA certificates must use "
                                           "the extension .crt")
                ctx.load_cert_chain(path, key)
            elif name.endswith(".key") and not os.path.exists(path[:-4] + ".cert"):
                raise InvalidParameter(f"missing client certificate {name[:-4]}.cert "
                                       f"for key {name}")
        except (ssl.SSLError, OSError) as e:
            raise InvalidParameter(f"{path}: {e}") from None
    return ctx


def validate_mirror(mirror: str) -> str:
    url = urlparse(mirror)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise InvalidParameter(f"invalid mirror: unsupported scheme {url.scheme!r} in {mirror!r}")
    return f"{url.scheme}://{url.netloc}"


def _mirror(mirror: str, settings: RegistrySettings) -> Endpoint:
    url = validate_mirror(mirror)
    if url.startswith("http://"):
        return Endpoint(url, False, mirror=True)
    host = urlparse(url).netloc
    verify = not is_insecure(host, settings)
    return Endpoint(url, tls_context(host, verify=verify, certs_dir=settings.certs_dir),
                    mirror=True)


def host_mirrors(domain: str, settings: RegistrySettings) -> tuple[str, ...]:
    """The registry-hosts mirrors of a registry (host names compare case-insensitively)."""
    for host, mirrors in settings.hosts:
        if host == domain.lower():
            return mirrors
    return ()


def endpoints(domain: str, settings: RegistrySettings) -> list[Endpoint]:
    """The endpoints to try for a registry, in order (blocking: reads certs, resolves)."""
    out = [_mirror(m, settings) for m in host_mirrors(domain, settings)]
    if domain == DEFAULT_DOMAIN:
        out.extend(_mirror(m, settings) for m in settings.mirrors)
        out.append(Endpoint(HUB_URL, tls_context("registry-1.docker.io", verify=True,
                                                 certs_dir=settings.certs_dir)))
        return out
    insecure = is_insecure(domain, settings)
    out.append(Endpoint(f"https://{domain}", tls_context(domain, verify=not insecure,
                                                         certs_dir=settings.certs_dir)))
    if insecure:
        out.append(Endpoint(f"http://{domain}", False))
    return out


def login_domain(server_address: str) -> str:
    """The registry a `docker login` address names ("" or Hub's v1 URL mean Docker Hub)."""
    address = server_address.strip()
    if not address or address.rstrip("/") in (HUB_LOGIN_ADDRESS.rstrip("/"),
                                              "https://index.docker.io", "index.docker.io",
                                              "docker.io", "registry-1.docker.io"):
        return DEFAULT_DOMAIN
    address = _strip_scheme(address)
    return address.split("/", 1)[0]
