"""The networks section of `docker stats`: counters of a container's interfaces, read
from /proc/<pid>/net/dev (which shows the container's own network namespace)."""

from __future__ import annotations

from typing import Any

from ..networks.contract import network_mode
from .records import Container

# /proc/net/dev's receive and transmit columns, and the fields dockerd names them.
_RX = {0: "rx_bytes", 1: "rx_packets", 2: "rx_errors", 3: "rx_dropped"}
_TX = {8: "tx_bytes", 9: "tx_packets", 10: "tx_errors", 11: "tx_dropped"}


def has_interfaces(c: Container) -> bool:
    """Whether the container has endpoints of its own (not host, none or another's)."""
    mode = network_mode(c.host_config)
    return mode not in ("host", "none") and not mode.startswith("container:")


def parse(text: str) -> dict[str, dict[str, int]]:
    """Interface -> counters, loopback left out, interfaces sorted (as Go marshals a map)."""
    out = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        fields = rest.split()
        if not sep or name == "lo" or len(fields) < 16:
            continue
        values = [int(f) for f in fields]
        out[name] = {key: values[i] for i, key in {**_RX, **_TX}.items()}
    return dict(sorted(out.items()))


def read(c: Container) -> dict[str, Any] | None:
    """The networks section for a running container, or None when it has none."""
    if not has_interfaces(c) or c.state.pid <= 0:
        return None
    try:
        with open(f"/proc/{c.state.pid}/net/dev") as f:
            return parse(f.read())
    except OSError:  # it exited meanwhile
        return None
