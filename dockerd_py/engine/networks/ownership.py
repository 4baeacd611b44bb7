"""Which bridges on the host are this daemon's: a bridge is ours only when it carries our
mark, an interface alias (IFLA_IFALIAS) naming this daemon's exec root.

Another program's bridge (Docker's dockerd and its docker0, Podman's podman0, one made by
hand, another daemon of ours) is never used, changed or deleted: netavark adds addresses
to a bridge it finds and deletes it once its last interface is gone, so handing it a bridge
that is not ours would take over someone else's network. The mark is set right after the
setup that made the bridge; a bridge seen without a mark in between is someone else's,
which only ever makes the other daemon pick another name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from enum import Enum

from ...errors import InternalError
from . import grammar

log = logging.getLogger(__name__)

MARK_PREFIX = "dockerd-py:"


class Owner(Enum):
    ABSENT = "absent"
    OURS = "ours"
    FOREIGN = "foreign"


class BridgeOwnership:
    def __init__(self, exec_root: str) -> None:
        self.tag = hashlib.sha256(exec_root.encode()).hexdigest()[:8]
        self.mark = MARK_PREFIX + self.tag

    def fallback_name(self) -> str:
        """The default bridge's name when docker0 (or the configured name) is taken:
        distinct per exec root, so daemons side by side never meet on it."""
        return "dpy" + self.tag

    def owner(self, bridge: str) -> Owner:
        if not grammar.bridge_name_ok(bridge):
            return Owner.FOREIGN
        try:
            with open(f"/sys/class/net/{bridge}/ifalias") as f:
                alias = f.read().strip()
        except FileNotFoundError:
            return Owner.ABSENT
        except OSError:
            return Owner.FOREIGN
        return Owner.OURS if alias == self.mark else Owner.FOREIGN

    def check(self, bridge: str) -> None:
        """Before a setup that may make the bridge or add to it: refuse another's. (A name
        outside the grammar is left to the driver, which refuses it in its own words.)"""
        if grammar.bridge_name_ok(bridge) and self.owner(bridge) is Owner.FOREIGN:
            raise InternalError(f"bridge {bridge} exists and was not made by this daemon "
                                "(another program's, such as Docker's dockerd): not using it")

    async def claim(self, bridge: str) -> None:
        """After a setup made the bridge (or found ours): mark it ours."""
        if self.owner(bridge) is not Owner.FOREIGN or not grammar.bridge_name_ok(bridge):
            return  # marked already, or gone again
        proc = await asyncio.create_subprocess_exec(
            "ip", "link", "set", "dev", bridge, "alias", self.mark,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode:
            log.warning("marking bridge %s as ours: %s", bridge,
                        err.decode(errors="replace").strip())
