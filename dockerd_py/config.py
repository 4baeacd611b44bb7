"""Daemon configuration: command-line flags merged with daemon.json.

Keys and defaults follow dockerd. A directive given both as a flag and in the
file is an error, as in dockerd; SIGHUP re-reads the file and applies the keys
listed in RELOADABLE (the ones dockerd reloads that mean something here).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .dockerfile.golang import go_quote
from .errors import InvalidParameter

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_DATA_ROOT = "/var/lib/dockerd-py"
DEFAULT_EXEC_ROOT = "/run/dockerd-py"
DEFAULT_CONFIG_FILE = "/etc/dockerd-py/daemon.json"

RELOADABLE = frozenset(
    {"debug", "log-level", "labels", "runtimes", "default-runtime", "live-restore",
     "max-concurrent-downloads", "max-concurrent-uploads", "shutdown-timeout",
     "insecure-registries", "registry-mirrors", "registry-hosts"}
)


@dataclass(frozen=True)
class Config:
    hosts: tuple[str, ...] = (DEFAULT_SOCKET,)
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    config_file: str = DEFAULT_CONFIG_FILE
    pidfile: str = ""
    log_level: str = "info"
    debug: bool = False
    group: str = "docker"
    labels: tuple[str, ...] = ()
    default_runtime: str = "runc"
    runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)
    live_restore: bool = True
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    shutdown_timeout: int = 15
    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    registry_hosts: tuple[tuple[str, tuple[str, ...]], ...] = ()   # see _registry_hosts
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    log_opts: dict[str, str] = field(default_factory=dict)
    log_driver: str = "json-file"
    bridge: str = ""                  # default bridge interface ("none": no default bridge)
    bip: str = ""                     # its gateway address and subnet, e.g. 172.17.0.1/16
    fixed_cidr: str = ""              # where its container addresses come from
    default_address_pools: tuple[dict[str, Any], ...] = ()  # {"base": CIDR, "size": N}
    iptables: bool = True
    ip_forward: bool = True
    userland_proxy: bool = True
    # -- the CRI server (dockerd_py/cri): off unless a socket is given (--cri-socket or
    # daemon.json "cri": {"socket", "cni-conf-dir", "cni-bin-dir", "sandbox-image"}).
    cri_socket: str = ""
    cri: dict[str, str] = field(default_factory=dict)

    @property
    def cri_options(self) -> dict[str, str]:
        """The "cri" object with its defaults; "socket" empty when CRI is off."""
        if self.cri_socket and self.cri.get("socket"):
            raise InvalidParameter("the following directives are specified both as a flag and "
                                   "in the configuration file: cri-socket")
        return {**CRI_DEFAULTS, **self.cri, "socket": self.cri_socket or self.cri.get("socket", "")}

    @property
    def effective_pidfile(self) -> str:
        return self.pidfile or os.path.join(self.exec_root, "dockerd-py.pid")


CRI_DEFAULTS = {"socket": "", "cni-conf-dir": "/etc/cni/net.d", "cni-bin-dir": "/usr/lib/cni",
                "sandbox-image": "registry.k8s.io/pause:3.9"}


def _cri_object(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or any(not isinstance(v, str) for v in raw.values()):
        raise TypeError("cri: an object of strings")
    unknown = sorted(set(raw) - set(CRI_DEFAULTS))
    if unknown:
        raise ValueError("unknown cri option " + ", ".join(unknown))
    return dict(raw)


# How the API reads the configuration in force (SIGHUP replaces it).
ConfigSource = Callable[[], Config]


# daemon.json key -> Config field, with the converter applied to the file value.
_FILE_KEYS: dict[str, tuple[str | None, Any]] = {
    "hosts": ("hosts", tuple),
    "data-root": ("data_root", str),
    "exec-root": ("exec_root", str),
    "pidfile": ("pidfile", str),
    "log-level": ("log_level", str),
    "debug": ("debug", bool),
    "group": ("group", str),
    "labels": ("labels", tuple),
    "default-runtime": ("default_runtime", str),
    "runtimes": ("runtimes", dict),
    "live-restore": ("live_restore", bool),
    "max-concurrent-downloads": ("max_concurrent_downloads", int),
    "max-concurrent-uploads": ("max_concurrent_uploads", int),
    "shutdown-timeout": ("shutdown_timeout", int),
    "insecure-registries": ("insecure_registries", tuple),
    "registry-mirrors": ("registry_mirrors", tuple),
    "tls": ("tls", bool),
    "tlsverify": ("tlsverify", bool),
    "tlscacert": ("tlscacert", str),
    "tlscert": ("tlscert", str),
    "tlskey": ("tlskey", str),
    "log-opts": ("log_opts", dict),
    "log-driver": ("log_driver", str),
    "bridge": ("bridge", str),
    "bip": ("bip", str),
    "fixed-cidr": ("fixed_cidr", str),
    "default-address-pools": ("default_address_pools", tuple),
    "iptables": ("iptables", bool),
    "ip-forward": ("ip_forward", bool),
    "userland-proxy": ("userland_proxy", bool),
    "cri": ("cri", _cri_object),
    # Accepted for compatibility with dockerd's daemon.json; nothing to configure.
    "storage-driver": (None, str),
    "experimental": (None, bool),
    "features": (None, dict),
}


# -- registry-hosts: {"<registry host>": {"mirrors": ["http(s)://host[:port]", ...]}} -------
# Mirrors tried in order before the registry, as containerd's hosts configuration. Both
# the host and the URLs end up in request URLs and certs.d paths: strict grammar only.

_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_REGISTRY_HOST = re.compile(rf"(?:{_HOST_LABEL})(?:\.{_HOST_LABEL})*(?::[0-9]{{1,5}})?"
                            r"|\[[0-9a-f:.]+\](?::[0-9]{1,5})?")
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")
_MAX_MIRRORS = 16


def _q(value: Any) -> str:
    """Quoted as Go's %q quotes (dockerd's messages)."""
    return go_quote(value) if isinstance(value, str) else repr(value)


def _registry_host(host: str) -> bool:
    if len(host) > 255 or not _REGISTRY_HOST.fullmatch(host):
        return False
    if host.startswith("["):
        addr, _, rest = host[1:].partition("]")
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            return False
        port = rest[1:]
    else:
        port = host.partition(":")[2]
    return not port or 0 < int(port) < 65536


def _registry_mirror(raw: Any) -> str:
    if not isinstance(raw, str) or any(c.isspace() or ord(c) < 32 for c in raw):
        raise InvalidParameter(f"invalid mirror: {_q(raw)} is not a valid URI")
    uri = urlsplit(raw)
    if uri.scheme not in ("http", "https"):
        raise InvalidParameter(f"invalid mirror: unsupported scheme {_q(uri.scheme)} in {_q(raw)}")
    if uri.query or uri.fragment or "?" in raw or "#" in raw:
        raise InvalidParameter(f"invalid mirror: query or fragment at end of the URI {_q(raw)}")
    if "@" in uri.netloc:
        raise InvalidParameter(f"invalid mirror: username/password not allowed in URI {_q(raw)}")
    if uri.path not in ("", "/"):
        raise InvalidParameter(f"invalid mirror: path not allowed in URI {_q(raw)} (a mirror "
                               "serves the registry's own /v2/ paths)")
    if not _registry_host(uri.netloc.lower()):
        raise InvalidParameter(f"invalid mirror: {_q(raw)} does not name a valid host")
    return f"{uri.scheme}://{uri.netloc.lower()}"


def _registry_hosts(raw: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(raw, dict):
        raise InvalidParameter(f"invalid value for registry-hosts: {_q(raw)}")
    out: dict[str, tuple[str, ...]] = {}
    for key, entry in raw.items():
        host = key.lower()
        host = "docker.io" if host in _HUB_ALIASES else host
        if not _registry_host(host):
            raise InvalidParameter(
                f"invalid registry-hosts: {_q(key)} is not a valid registry host name")
        if host in out:
            raise InvalidParameter(f"invalid registry-hosts: {_q(key)} is configured twice")
        if not isinstance(entry, dict):
            raise InvalidParameter(f"invalid registry-hosts: the value for {_q(key)} must be "
                                   'an object such as {"mirrors": [...]}')
        unknown = sorted(k for k in entry if k != "mirrors")
        if unknown:
            raise InvalidParameter(f"invalid registry-hosts: unknown key(s) for {_q(key)}: "
                                   + ", ".join(unknown))
        mirrors = entry.get("mirrors", [])
        if not isinstance(mirrors, list) or len(mirrors) > _MAX_MIRRORS:
            raise InvalidParameter(f"invalid registry-hosts: mirrors of {_q(key)} must be a "
                                   f"list of at most {_MAX_MIRRORS} URLs")
        out[host] = tuple(_registry_mirror(m) for m in mirrors)
    return tuple(out.items())


_FILE_KEYS["registry-hosts"] = ("registry_hosts", _registry_hosts)


def read_file(path: str, *, required: bool) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if required:
            raise InvalidParameter(f"unable to configure the Docker daemon with file {path}: "
                                   "open: no such file or directory") from None
        return {}
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidParameter(
            f"unable to configure the Docker daemon with file {path}: {e}") from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"unable to configure the Docker daemon with file {path}: "
                               "the configuration must be a JSON object")
    unknown = sorted(k for k in data if k not in _FILE_KEYS)
    if unknown:
        raise InvalidParameter("the following directives don't match any configuration option: "
                               + ", ".join(unknown))
    return data


def _json_type_ok(convert: Any, raw: Any) -> bool:
    """tuple(str) would split "a=b" into characters, bool("false") is True: check first."""
    if convert is tuple:
        return isinstance(raw, list) and all(isinstance(x, (str, dict)) for x in raw)
    if convert is int:
        return isinstance(raw, int) and not isinstance(raw, bool)
    if convert in (str, bool, dict):
        return isinstance(raw, convert)
    return True


def _from_file(data: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for key, raw in data.items():
        name, convert = _FILE_KEYS[key]
        if not _json_type_ok(convert, raw):  # as Go's json.Unmarshal: no coercion
            raise InvalidParameter(f"invalid value for {key}: {raw!r}")
        if name is None:
            continue
        try:
            values[name] = convert(raw)
        except (TypeError, ValueError):
            raise InvalidParameter(f"invalid value for {key}: {raw!r}") from None
    return values


def _show(value: Any) -> str:
    """Values as dockerd prints them: lists as [a b]."""
    if isinstance(value, (tuple, list)):
        return "[" + " ".join(map(str, value)) + "]"
    return str(value)


def build(flags: dict[str, Any], *, config_file: str, file_required: bool) -> Config:
    """Merge explicit flags (only those the user gave) with the file; flags and
    file must not name the same directive."""
    data = read_file(config_file, required=file_required)
    from_file = _from_file(data)
    clash = sorted(k for k in from_file if k in flags)
    if clash:
        raise InvalidParameter(
            "the following directives are specified both as a flag and in the configuration file: "
            + ", ".join(f"{k}: (from flag: {_show(flags[k])}, from file: {_show(from_file[k])})"
                        for k in clash))
    merged = {**from_file, **flags, "config_file": config_file}
    if merged.get("debug"):
        merged.setdefault("log_level", "debug")
    return Config(**merged)


def reload(current: Config) -> tuple[Config, list[str]]:
    """Re-read the file and apply reloadable keys; returns (config, changed keys)."""
    data = read_file(current.config_file, required=False)
    values = _from_file({k: v for k, v in data.items() if k in RELOADABLE})
    changed = sorted(k for k, v in values.items() if getattr(current, k) != v)
    return dataclasses.replace(current, **values), changed
