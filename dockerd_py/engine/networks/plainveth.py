"""The fast path for the common case: a container on the anchored default bridge with no
published port. Its interface is a veth pair made with two `ip -batch` runs instead of a
netavark setup (~5 ms instead of ~50): the bridge, its NAT and forwarding rules exist
already (the anchor's netavark setup made them), and such a container needs no rule of
its own. Teardown deletes the host end, which takes the pair away.

The scripts are built from words, never from text: see _ip.
"""

from __future__ import annotations

import asyncio

from ...errors import InternalError
from . import grammar


def host_name(cid: str) -> str:
    """The host end: 15 characters at most, unique per container."""
    return "vd" + cid[:12]


async def _run(argv: list[str], script: bytes | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if script is not None else None,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(script)
    if proc.returncode != 0:
        raise InternalError("setting up the container interface: "
                            + err.decode(errors="replace").strip())


async def _ip(prefix: list[str], commands: list[list[str]]) -> None:
    """The `ip` commands, in another namespace when prefixed with nsenter (ip's own -n
    only takes names under /var/run/netns). One `ip -batch` run when every word is one
    the batch parser reads as a plain word (a client's string never adds a line or a
    word to the script); otherwise, which only an odd bridge name or exec root from the
    daemon's own flags can cause, one argument vector per command (slower)."""
    if all(grammar.batch_word_ok(w) for cmd in commands for w in cmd):
        script = "".join(" ".join(cmd) + "\n" for cmd in commands)
        await _run([*prefix, "ip", "-batch", "-"], script.encode())
        return
    for cmd in commands:
        await _run([*prefix, "ip", *cmd])


async def setup(netns: str, cid: str, bridge: str, iface: str, address: str,
                prefix_len: int, gateway: str, mac: str) -> None:
    """All or nothing: a failure deletes what was made."""
    host = host_name(cid)
    try:
        await _ip([], [["link", "add", host, "type", "veth", "peer", "name", iface,
                        "address", grammar.check_mac(mac), "netns", netns],
                       ["link", "set", host, "master", bridge, "up"]])
        await _ip(["nsenter", f"--net={netns}"], [
            ["link", "set", "lo", "up"],
            ["addr", "add", f"{address}/{prefix_len}", "dev", iface],
            ["link", "set", iface, "up"],
            ["route", "add", "default", "via", gateway, "dev", iface]])
    except BaseException:
        await asyncio.shield(teardown(cid))
        raise


async def add_link_local(netns: str, iface: str, addresses: list[str]) -> None:
    """IPAMConfig.LinkLocalIPs on the container's interface, as dockerd adds them: /16 for
    IPv4, /64 for IPv6. The addresses were parsed (ipaddress) before they got here."""
    if addresses:
        await _ip(["nsenter", f"--net={netns}"], [
            ["addr", "add", f"{a}/{64 if ':' in a else 16}", "dev", iface] for a in addresses])


async def teardown(cid: str) -> None:
    """Idempotent: a pair already gone (its namespace went) is fine."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "link", "del", host_name(cid), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    await proc.wait()
