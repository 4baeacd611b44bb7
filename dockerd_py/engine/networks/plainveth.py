"""The fast path for the common case: a container on the anchored default bridge with no
published port. Its interface is a veth pair made with two `ip -batch` runs instead of a
netavark setup (~5 ms instead of ~50): the bridge, its NAT and forwarding rules exist
already (the anchor's netavark setup made them), and such a container needs no rule of
its own. Teardown deletes the host end, which takes the pair away.
"""

from __future__ import annotations

import asyncio

from ...errors import InternalError


def host_name(cid: str) -> str:
    """The host end: 15 characters at most, unique per container."""
    return "vd" + cid[:12]


async def _ip(*prefix: str, script: str) -> None:
    """`ip -batch`, in another namespace when prefixed with nsenter (ip's own -n only
    takes names under /var/run/netns)."""
    proc = await asyncio.create_subprocess_exec(
        *prefix, "ip", "-batch", "-", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise InternalError("setting up the container interface: "
                            + err.decode(errors="replace").strip())


async def setup(netns: str, cid: str, bridge: str, iface: str, address: str,
                prefix_len: int, gateway: str, mac: str) -> None:
    """All or nothing: a failure deletes what was made."""
    host = host_name(cid)
    try:
        await _ip(script=(f"link add {host} type veth peer name {iface} address {mac} "
                          f"netns {netns}\n"
                          f"link set {host} master {bridge} up\n"))
        await _ip("nsenter", f"--net={netns}", script=(f"link set lo up\n"
                                       f"addr add {address}/{prefix_len} dev {iface}\n"
                                       f"link set {iface} up\n"
                                       f"route add default via {gateway} dev {iface}\n"))
    except BaseException:
        await asyncio.shield(teardown(cid))
        raise


async def teardown(cid: str) -> None:
    """Idempotent: a pair already gone (its namespace went) is fine."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "link", "del", host_name(cid), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    await proc.wait()
