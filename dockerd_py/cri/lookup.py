"""Finding CRI objects among the engine's containers (full ID or unique prefix)."""

from __future__ import annotations

from collections.abc import Mapping

from ..engine.containers.contract import Containers
from ..engine.containers.records import Container
from ..errors import InvalidParameter, NotFound
from .meta import CONTAINER, SANDBOX, Meta, meta_of


def all_of(containers: Containers, kind: str) -> list[tuple[Container, Meta]]:
    out = []
    for c in containers.list():
        m = meta_of(c)
        if m is not None and m.kind == kind:
            out.append((c, m))
    return out


def members(containers: Containers, sandbox_id: str) -> list[tuple[Container, Meta]]:
    """The CRI containers of a pod sandbox."""
    return [(c, m) for c, m in all_of(containers, CONTAINER) if m.sandbox_id == sandbox_id]


def find(containers: Containers, ref: str, kind: str) -> tuple[Container, Meta]:
    what = "sandbox" if kind == SANDBOX else "container"
    if not ref:
        raise InvalidParameter(f"{what} ID is required")
    found = [(c, m) for c, m in all_of(containers, kind) if c.id.startswith(ref)]
    exact = [(c, m) for c, m in found if c.id == ref]
    if exact:
        return exact[0]
    if len(found) == 1:
        return found[0]
    if found:
        raise InvalidParameter(f"{what} ID {ref!r} is ambiguous")
    raise NotFound(f"{what} {ref!r} not found")


def sandbox(containers: Containers, ref: str) -> tuple[Container, Meta]:
    return find(containers, ref, SANDBOX)


def container(containers: Containers, ref: str) -> tuple[Container, Meta]:
    return find(containers, ref, CONTAINER)


def labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
