"""Network configurations: a CNI config directory read as libcni and go-cni read it.

The lexicographically first `.conf`, `.conflist` or `.json` file is the pod network;
a single-plugin file (`.conf`, `.json`) becomes a list of that one plugin. The files
belong to the host's administrator; their values still go through the grammars that
guard argv and paths (plugin types, network names).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InvalidParameter
from . import grammar

EXTENSIONS = (".conf", ".conflist", ".json")
_MAX_FILE = 1 << 20
# libcni's rule for network names; the name is also part of cache file names.
_NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")
_VERSION = re.compile(r"\d+\.\d+\.\d+")


class ConfigError(Exception):
    """A config file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class NetworkList:
    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    disable_check: bool = False
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"cniVersion": self.cni_version, "name": self.name,
                "disableCheck": self.disable_check, "plugins": list(self.plugins)}


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")) if _VERSION.fullmatch(version) else (0,)


def from_list(doc: Any, source: str) -> NetworkList:
    """A parsed conflist (also the form kept in the result cache)."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a configuration list must be a JSON object")
    name = doc.get("name")
    if not isinstance(name, str) or not _NETWORK_NAME.fullmatch(name):
        raise ConfigError(f"{source}: error parsing configuration list: invalid or missing "
                          f"network name {name!r}")
    version = doc.get("cniVersion", "0.1.0")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ConfigError(f"{source}: invalid cniVersion {version!r}")
    plugins = doc.get("plugins")
    if not isinstance(plugins, list):
        raise ConfigError(f"{source}: error parsing configuration list: no 'plugins' key")
    if not plugins:
        raise ConfigError(f"CNI config list in config file {source} has no networks")
    for plugin in plugins:
        if not isinstance(plugin, dict):
            raise ConfigError(f"{source}: a plugin configuration must be a JSON object")
        try:
            grammar.plugin_type(plugin.get("type"))
        except InvalidParameter as e:
            raise ConfigError(f"{source}: {e}") from None
    disable = doc.get("disableCheck", False)
    return NetworkList(name, version, tuple(plugins), disable is True, source)


def from_single(doc: Any, source: str) -> NetworkList:
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a network configuration must be a JSON object")
    if not doc.get("type"):
        # Also catches a conflist saved under a .conf name, as go-cni does.
        raise ConfigError(f"network type not found in {source}")
    return from_list({"cniVersion": doc.get("cniVersion", "0.1.0"), "name": doc.get("name"),
                      "plugins": [doc]}, source)


def conf_files(conf_dir: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"failed to read config directory {conf_dir}: {e.strerror}") from None
    return [conf_dir / n for n in names
            if n.endswith(EXTENSIONS) and (conf_dir / n).is_file()]


def load_file(path: Path) -> NetworkList:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE + 1)
    except OSError as e:
        raise ConfigError(f"failed to read {path}: {e.strerror}") from None
    if len(data) > _MAX_FILE:
        raise ConfigError(f"{path}: larger than {_MAX_FILE} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"failed to load CNI config file {path}: {e}") from None
    if path.suffix == ".conflist":
        return from_list(doc, str(path))
    return from_single(doc, str(path))


def load(conf_dir: Path) -> NetworkList | None:
    """The pod network (blocking), None when the directory holds no config file."""
    files = conf_files(conf_dir)
    if not files:
        return None
    return load_file(files[0])
