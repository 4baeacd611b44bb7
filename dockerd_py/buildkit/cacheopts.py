"""The cache options of a Solve (`--cache-from`, `--cache-to`), checked to what this
daemon implements: inline cache export, and import from images on a registry
(`type=registry,ref=REF`, the short `--cache-from REF`) that carry an inline cache.
Anything else is refused by name, before the build starts.

`type=local` and `type=registry` export, and `type=local` import, need a separate
cache store (a local directory through the session's content store, or a cache
manifest on a registry); buildx's docker driver refuses the exports itself, as
with dockerd 20.10.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from dockerd_py.engine.reference import parse_normalized
from dockerd_py.errors import DaemonError, InvalidParameter, NotImplementedByDaemon
from dockerd_py.protos.buildkit.control import control_pb2 as pb

_MAX_IMPORTS = 16
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,511}")


@dataclass(frozen=True)
class CacheOptions:
    imports: tuple[str, ...] = ()       # image references, in the client's order
    inline: bool = False                # embed the cache in the exported image


def _ref(value: str) -> str:
    if not _REF.fullmatch(value):
        raise InvalidParameter(f"invalid cache import reference {value[:120]!r}")
    try:
        parse_normalized(value)
        return value            # as the client wrote it: the progress shows it so
    except (DaemonError, ValueError) as e:
        raise InvalidParameter(f"invalid cache import reference {value[:120]!r}: {e}") \
            from None


class _Entry(Protocol):
    """A CacheOptionsEntry, of the control API or of the gateway's."""

    @property
    def Type(self) -> str: ...  # noqa: N802 (the wire name)

    @property
    def Attrs(self) -> Mapping[str, str]: ...  # noqa: N802


def import_refs(entries: Iterable[_Entry]) -> list[str]:
    out = []
    for entry in entries:
        if entry.Type in ("registry", "image"):
            unknown = set(entry.Attrs) - {"ref"}
            if unknown:
                raise NotImplementedByDaemon(
                    f"cache import attribute {sorted(unknown)[0][:60]!r} is not supported")
            if not entry.Attrs.get("ref"):
                raise InvalidParameter("cache import of type registry needs ref=IMAGE")
            out.append(_ref(entry.Attrs["ref"]))
        else:
            raise NotImplementedByDaemon(
                f"cache import type {entry.Type[:40]!r} is not supported by this daemon: "
                "use --cache-from type=registry,ref=IMAGE (an image built with "
                "--cache-to type=inline)")
    return out


def cache_options(cache: pb.CacheOptions) -> CacheOptions:
    imports = import_refs(cache.Imports)
    imports += [_ref(r) for r in cache.ImportRefsDeprecated]
    inline = False
    exports = list(cache.Exports)
    if cache.ExportRefDeprecated:
        exports.append(pb.CacheOptionsEntry(Type="registry"))
    for entry in exports:
        if entry.Type != "inline":
            raise NotImplementedByDaemon(
                f"cache export type {entry.Type[:40]!r} is not supported by this daemon: "
                "use --cache-to type=inline")
        for key, value in entry.Attrs.items():
            if key == "mode" and value in ("", "min"):
                continue
            raise NotImplementedByDaemon(
                f"inline cache export attribute {key[:40]}={value[:40]} is not supported "
                "(the inline cache holds the final image's steps only: mode=min)")
        inline = True
    if len(imports) > _MAX_IMPORTS:
        raise InvalidParameter(f"at most {_MAX_IMPORTS} cache imports")
    return CacheOptions(tuple(dict.fromkeys(imports)), inline)
