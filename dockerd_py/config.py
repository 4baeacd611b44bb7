"""Daemon configuration: command-line flags merged with daemon.json.

Keys and defaults follow dockerd. A directive given both as a flag and in the
file is an error, as in dockerd; SIGHUP re-reads the file and applies the keys
listed in RELOADABLE (the ones dockerd reloads that mean something here).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidParameter

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
DEFAULT_DATA_ROOT = "/var/lib/dockerd-py"
DEFAULT_EXEC_ROOT = "/run/dockerd-py"
DEFAULT_CONFIG_FILE = "/etc/dockerd-py/daemon.json"

RELOADABLE = frozenset(
    {"debug", "log-level", "labels", "runtimes", "default-runtime", "live-restore",
     "max-concurrent-downloads", "max-concurrent-uploads", "shutdown-timeout",
     "insecure-registries", "registry-mirrors"}
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
