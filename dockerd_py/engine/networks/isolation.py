"""Isolation between this daemon's bridge networks, as dockerd's DOCKER-ISOLATION chains.

netavark 1.4 forwards between any two of its bridges; dockerd does not. Two chains
of this daemon's own (named after its exec root, so daemons side by side never touch
each other's) send traffic that leaves one of our bridges for another one to DROP,
unless it was DNATed to a published port. The chains are rewritten whole with
iptables-restore --noflush, so each change is atomic. Only names of the strict grammar
(grammar.py) are written into that input.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable

from . import grammar

log = logging.getLogger(__name__)


class Isolation:
    def __init__(self, exec_root: str, enabled: bool = True) -> None:
        tag = hashlib.sha256(exec_root.encode()).hexdigest()[:8].upper()
        self.stage1 = f"DPY-ISOLATION-1-{tag}"
        self.stage2 = f"DPY-ISOLATION-2-{tag}"
        self.enabled = enabled
        self.active = False          # the rules exist from the first container on a bridge on
        self._checked_first = False  # our FORWARD jump seen above netavark's once
        self._lock = asyncio.Lock()
        self._skipped: set[str] = set()  # invalid names already logged

    async def update(self, bridges: Iterable[str], *, start: bool = False) -> None:
        """Rewrite the rules for the daemon's bridges once they are active (start: they are
        from now on), so a daemon that never runs a container leaves nothing in the firewall."""
        if start:
            self.active = True
        if self.active:
            await self.sync(bridges)

    async def after_setup(self) -> None:
        """After a netavark setup: its first one on this host puts its FORWARD jump above
        ours. Checked until ours is seen first once; netavark never moves its jump after."""
        if self.active and not self._checked_first:
            await self.ensure_first()
            self._checked_first = True

    async def _run(self, *argv: str, stdin: bytes | None = None) -> int:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(stdin)
        if proc.returncode and argv[1:2] != ("-C",) and "-C" not in argv:
            log.warning("%s: %s", " ".join(argv[:3]), err.decode(errors="replace").strip())
        return proc.returncode or 0

    async def sync(self, bridges: Iterable[str]) -> None:
        """Rewrite the chains for the given bridges and make sure FORWARD jumps to them."""
        if not self.enabled:
            return
        names = sorted(b for b in set(bridges) if self._usable(b))
        lines = ["*filter", f":{self.stage1} - [0:0]", f":{self.stage2} - [0:0]"]
        for b in names:
            lines.append(f"-A {self.stage1} -i {b} ! -o {b} -j {self.stage2}")
            lines.append(f"-A {self.stage2} -o {b} -m conntrack ! --ctstate DNAT -j DROP")
        lines.append("COMMIT\n")
        async with self._lock:
            await self._run("iptables-restore", "-w", "--noflush",
                            stdin="\n".join(lines).encode())
            await self._jump_first()

    def _usable(self, bridge: str) -> bool:
        """A name that is one plain word in the iptables-restore input. Names are checked
        when networks are made; one from a record made before that check is left out
        (its network is not isolated) rather than failing every later sync."""
        if grammar.bridge_name_ok(bridge):
            return True
        if bridge not in self._skipped:
            self._skipped.add(bridge)
            log.warning("bridge name %r is not valid: its network is left out of the "
                        "isolation rules", bridge)
        return False

    async def ensure_first(self) -> None:
        """netavark puts its own FORWARD jump at the top the first time it sets up a
        network, and that chain ACCEPTs everything leaving its bridges: ours must stay
        ahead of it, or traffic between bridges gets through."""
        if self.enabled:
            async with self._lock:
                await self._jump_first()

    async def _jump_first(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            "iptables", "-w", "-S", "FORWARD", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        rules = [ln for ln in out.decode().splitlines() if ln.startswith("-A FORWARD ")]
        if rules and rules[0] == f"-A FORWARD -j {self.stage1}":
            return
        while await self._run("iptables", "-w", "-C", "FORWARD", "-j", self.stage1) == 0:
            if await self._run("iptables", "-w", "-D", "FORWARD", "-j", self.stage1) != 0:
                break
        await self._run("iptables", "-w", "-I", "FORWARD", "1", "-j", self.stage1)

    async def remove(self) -> None:
        """Take the chains away (the daemon stops with no container on a bridge)."""
        if not self.enabled:
            return
        async with self._lock:
            while await self._run("iptables", "-w", "-C", "FORWARD", "-j", self.stage1) == 0:
                if await self._run("iptables", "-w", "-D", "FORWARD", "-j", self.stage1) != 0:
                    break
            for chain in (self.stage1, self.stage2):
                if await self._run("iptables", "-w", "-F", chain) == 0:
                    await self._run("iptables", "-w", "-X", chain)
