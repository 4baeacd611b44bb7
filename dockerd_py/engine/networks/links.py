"""Legacy container links (`--link NAME[:ALIAS]`), pure: their grammar, and the environment
a linked container hands the container that links to it on the default bridge.

The variables are those of moby's links package as dockerd 20.10 sets them: ALIAS_NAME,
ALIAS_PORT (the lowest exposed port, TCP first), ALIAS_PORT_<n>_<PROTO>[_ADDR|_PORT|
_PROTO] for every exposed port, _START/_END for runs of consecutive ports, and
ALIAS_ENV_<var> for the linked container's environment (but HOME and PATH).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from ...errors import InvalidParameter


def parse(link: str) -> tuple[str, str]:
    """(container name, alias) of one HostConfig.Links entry: "name", "name:alias", or
    the form dockerd shows, "/name:/parent/alias"."""
    if not link:
        raise InvalidParameter("empty string specified for links")
    parts = link.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"bad format for links: {link}")
    if len(parts) == 1:
        return link, link
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]


def _ports(exposed: Iterable[str]) -> list[tuple[int, str]]:
    out = []
    for key in exposed:
        number, _, proto = str(key).partition("/")
        if number.isdigit():
            out.append((int(number), (proto or "tcp").lower()))
    return out


def _before(a: tuple[int, str], b: tuple[int, str]) -> int:
    """nat.Sort's order in 20.10's links: by number, TCP first among equal numbers."""
    if a[0] != b[0]:
        return -1 if a[0] < b[0] else 1
    if a[1] == b[1]:
        return 0
    return -1 if a[1] == "tcp" else 1


def _run_end(ports: Sequence[tuple[int, str]], index: int) -> int:
    """Where the run of consecutive numbers that starts at index ends (20.10's
    nextContiguous: the protocol is not compared)."""
    value = ports[index][0]
    for i in range(index + 1, len(ports)):
        if ports[i][0] > value + 1:
            return i - 1
        value += 1
    return len(ports) - 1


def environment(name: str, child_ip: str, child_env: Iterable[str],
                exposed: Iterable[str]) -> list[str]:
    """The variables for a link named `name` ("/parent/alias") to a container at child_ip."""
    alias = name.rsplit("/", 1)[-1].upper().replace("-", "_")
    ports = sorted(_ports(exposed), key=functools.cmp_to_key(_before))
    env = []
    if ports:
        number, proto = ports[0]
        env.append(f"{alias}_PORT={proto}://{child_ip}:{number}")
    i = 0
    while i < len(ports):
        j = _run_end(ports, i)
        if j > i + 1:
            (first, proto), (last, last_proto) = ports[i], ports[j]
            head = f"{alias}_PORT_{first}_{proto.upper()}"
            env += [f"{head}_START={proto}://{child_ip}:{first}", f"{head}_ADDR={child_ip}",
                    f"{head}_PROTO={proto}", f"{head}_PORT_START={first}"]
            tail = f"{alias}_PORT_{first}_{last_proto.upper()}"
            env += [f"{tail}_END={last_proto}://{child_ip}:{last}", f"{tail}_PORT_END={last}"]
            i = j + 1
        else:
            i += 1
    for number, proto in ports:
        head = f"{alias}_PORT_{number}_{proto.upper()}"
        env += [f"{head}={proto}://{child_ip}:{number}", f"{head}_ADDR={child_ip}",
                f"{head}_PORT={number}", f"{head}_PROTO={proto}"]
    env.append(f"{alias}_NAME={name}")
    for entry in child_env:
        key, found, value = str(entry).partition("=")
        if found and key not in ("HOME", "PATH"):
            env.append(f"{alias}_ENV_{key}={value}")
    return env
