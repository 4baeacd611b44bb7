"""The Dockerfile frontend's options (BuildKit's `dockerfile.v0` frontend attributes),
checked to a strict grammar. An attribute this daemon does not implement is refused
with a message that names it: never silently ignored."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockerd_py.errors import InvalidParameter, NotImplementedByDaemon

from .cacheopts import import_refs

DOCKERFILE_FRONTEND = "dockerfile.v0"

_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")
_LABEL_KEY = re.compile(r"[^\x00-\x1f=]{1,512}")
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_FILENAME = re.compile(r"[^\x00-\x1f]{1,4096}")
_HOST = re.compile(r"[A-Za-z0-9_.-]{1,253}[:=][0-9A-Fa-f:.\[\]]{2,64}")
_NAMED_CONTEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:-]{0,255}")
_LOCAL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

# Frontend capabilities a client may ask for that the built-in frontend has.
_CAPS = {"moby.buildkit.frontend.inputs", "moby.buildkit.frontend.subrequests",
         "moby.buildkit.frontend.contexts"}
# Build arguments that select BuildKit behaviour rather than reach the Dockerfile.
_BUILDKIT_ARGS = {"BUILDKIT_INLINE_CACHE", "BUILDKIT_MULTI_PLATFORM"}


@dataclass(frozen=True)
class FrontendRequest:
    filename: str = "Dockerfile"
    target: str = ""
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    platform: str = ""
    network: str = "default"                     # default | host | none
    extra_hosts: tuple[str, ...] = ()
    named_contexts: dict[str, str] = field(default_factory=dict)   # name -> local dir name
    inline_cache: bool = False
    cache_imports: tuple[str, ...] = ()          # --cache-from images (cacheopts.py)


def _refuse(key: str, why: str = "") -> NotImplementedByDaemon:
    return NotImplementedByDaemon(f"frontend option {key!r} is not supported by this "
                                  f"daemon's builder{': ' + why if why else ''}")


@dataclass(frozen=True)
class _CacheEntry:
    Type: str                                    # noqa: N815 (the wire names)
    Attrs: dict[str, str]                        # noqa: N815


def _cache_entries(value: str) -> list[_CacheEntry]:
    try:
        doc = json.loads(value) if value else []
    except ValueError:
        raise InvalidParameter("invalid cache-imports: not JSON") from None
    if not isinstance(doc, list):
        raise InvalidParameter("invalid cache-imports: not a list")
    out = []
    for item in doc:
        attrs = item.get("Attrs") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(item.get("Type"), str) or not (
                attrs is None or (isinstance(attrs, dict)
                                  and all(isinstance(v, str) for v in attrs.values()))):
            raise InvalidParameter("invalid cache-imports entry")
        out.append(_CacheEntry(item["Type"], dict(attrs or {})))
    return out


def parse_attrs(attrs: Mapping[str, str], host_platform: str) -> FrontendRequest:
    """FrontendAttrs (FrontendOpt) of a Dockerfile build, validated."""
    out: dict[str, object] = {}
    build_args: dict[str, str] = {}
    labels: dict[str, str] = {}
    named: dict[str, str] = {}
    for key, value in attrs.items():
        if key.startswith("build-arg:"):
            name = key.removeprefix("build-arg:")
            if not _ARG_NAME.fullmatch(name) or "\x00" in value:
                raise InvalidParameter(f"invalid build argument {name[:80]!r}")
            build_args[name] = value
        elif key.startswith("label:"):
            name = key.removeprefix("label:")
            if not _LABEL_KEY.fullmatch(name) or "\x00" in value:
                raise InvalidParameter(f"invalid label {name[:80]!r}")
            labels[name] = value
        elif key.startswith("context:"):
            name = key.removeprefix("context:")
            if not _NAMED_CONTEXT.fullmatch(name):
                raise InvalidParameter(f"invalid build context name {name[:80]!r}")
            if not value.startswith("local:"):
                raise _refuse(key, "only local directories (--build-context name=DIR) "
                                   "can be named contexts")
            local = value.removeprefix("local:")
            if not _LOCAL_NAME.fullmatch(local):
                raise InvalidParameter(f"invalid local context {local[:80]!r}")
            named[name] = local
        elif key.startswith("sharedkey:localdir:"):
            continue        # the client's cache identity for a local dir: ours is per build
        elif key == "filename":
            if not _FILENAME.fullmatch(value):
                raise InvalidParameter("invalid Dockerfile name")
            out["filename"] = value
        elif key == "dockerfilekey":
            if value != "dockerfile":
                raise _refuse(key, "the Dockerfile must come from the client's session")
        elif key == "target":
            if value and not _TARGET.fullmatch(value):
                raise InvalidParameter(f"invalid target stage {value[:80]!r}")
            out["target"] = value
        elif key == "no-cache":
            if value:
                raise _refuse(key, "--no-cache-filter is not supported; use --no-cache")
            out["no_cache"] = True
        elif key == "image-resolve-mode":
            if value not in ("default", "pull", "local"):
                raise InvalidParameter(f"invalid image-resolve-mode {value[:40]!r}")
            out["pull"] = value == "pull"
        elif key == "platform":
            if value and value not in (host_platform, host_platform + ","):
                raise NotImplementedByDaemon(
                    f"building for platform {value[:80]!r} is not supported: this daemon's "
                    f"builder builds for its own platform ({host_platform}) only")
            out["platform"] = value.rstrip(",")
        elif key == "force-network-mode":
            if value not in ("host", "none", "default", ""):
                raise InvalidParameter(f"network mode {value[:40]!r} not supported by "
                                       "buildkit")
            out["network"] = value or "default"
        elif key == "add-hosts":
            hosts = tuple(h for h in re.split(r"[,\s]+", value) if h)
            for host in hosts:
                if not _HOST.fullmatch(host):
                    raise InvalidParameter(f"invalid host entry {host[:80]!r}")
            out["extra_hosts"] = tuple(h.replace("=", ":", 1) for h in hosts)
        elif key == "frontend.caps":
            for cap in (c for c in value.split(",") if c):
                if cap.removesuffix("+forward") not in _CAPS:
                    raise _refuse(key, f"capability {cap[:80]!r}")
        elif key == "multi-platform":
            if value not in ("", "false"):
                raise _refuse(key, "multi-platform images are not supported")
        elif key == "cache-imports":    # the client's --cache-from, as JSON entries
            out["cache_imports"] = tuple(import_refs(_cache_entries(value)))
        elif key == "contextsubdir" and value in ("", "."):
            continue
        else:
            raise _refuse(key)
    for name in list(build_args):
        if name in _BUILDKIT_ARGS:
            value = build_args.pop(name)
            if name == "BUILDKIT_INLINE_CACHE":
                out["inline_cache"] = value not in ("", "0", "false")
            elif name == "BUILDKIT_MULTI_PLATFORM" and value not in ("", "0", "false"):
                raise _refuse("build-arg:" + name, "multi-platform images are not supported")
    return FrontendRequest(build_args=build_args, labels=labels, named_contexts=named,
                           **out)  # type: ignore[arg-type]
