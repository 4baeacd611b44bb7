"""JSON progress messages of pull and push, shaped as moby's progress output (pure).

The CLI draws the bar itself from ``progressDetail``; ``progress`` is the
pre-rendered bar older clients print, rendered as moby's JSONProgress does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]
Emit = Callable[[Message], Awaitable[None]]

_BAR_WIDTH = 50


def short(digest: str) -> str:
    """The 12-hex ID moby shows for a layer."""
    return digest.split(":", 1)[-1][:12]


def human_size(n: float) -> str:
    """go-units HumanSize: decimal units, 4 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


def render_bar(current: int, total: int) -> str:
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(_BAR_WIDTH, int(_BAR_WIDTH * current / total))
    head = ">" if filled < _BAR_WIDTH else ""
    bar = "=" * filled + head + " " * max(0, _BAR_WIDTH - filled - 1)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


def status(text: str, ident: str = "") -> Message:
    msg: Message = {"status": text}
    if ident:
        msg["id"] = ident
    return msg


def layer(text: str, ident: str) -> Message:
    return {"status": text, "progressDetail": {}, "id": ident}


def transfer(text: str, ident: str, current: int, total: int) -> Message:
    return {"status": text, "progressDetail": {"current": current, "total": total},
            "progress": render_bar(current, total), "id": ident}


class Throttle:
    """Decides when a byte count is worth a progress message: every 1% (at
    least 512 KiB) and at the end, so a 200 MB layer is ~100 messages, not 10000."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._step = max(512 << 10, total // 100)
        self._last = 0

    def due(self, current: int) -> bool:
        if current - self._last >= self._step or (current == self.total and current != self._last):
            self._last = current
            return True
        return False


async def discard(_: Message) -> None:
    return None
