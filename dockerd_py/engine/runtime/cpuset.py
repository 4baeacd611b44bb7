"""cpuset lists ("0-3,7"): parsed as moby's sysinfo parses them (pure).

Numbers are what Go's strconv.Atoi reads (ASCII digits, an optional sign), so
"٣", " 1" or "1_0" are invalid as they are for dockerd; ranges are bounded as
moby bounds them (CVE-2018-20699: a huge range must not allocate a huge set).
"""

from __future__ import annotations

import re

from ...errors import InvalidParameter

MAX_CPUS = 8192     # moby's defaultMaxCPUs; more only if the host has more
_ATOI = re.compile(r"[+-]?[0-9]+")


def parse(value: str, maximum: int = MAX_CPUS) -> frozenset[int]:
    """The numbers in a cpuset list; ValueError worded as moby's parseUintList."""
    if value == "":
        return frozenset()
    found: set[int] = set()
    invalid = ValueError(f"invalid format: {value}")
    for part in value.split(","):
        low_text, dash, high_text = part.partition("-") if "-" in part else (part, "", part)
        if not (_ATOI.fullmatch(low_text) and _ATOI.fullmatch(high_text)):
            raise invalid
        low, high = int(low_text), int(high_text)
        if dash and high < low:
            raise invalid
        if maximum and high > maximum:
            raise ValueError(f"value of out range, maximum is {maximum}")
        found.update(range(low, high + 1))
    return frozenset(found)


def check(value: str, available: str, what: str) -> None:
    """dockerd's 400s for HostConfig.CpusetCpus (what="cpus") or CpusetMems ("mems"),
    given the host's list (as in its cpuset file; "" = unknown, not checked)."""
    if not value:
        return
    have = parse(available, 0) if available else frozenset()
    try:
        wanted = parse(value, max([MAX_CPUS, *have]))
    except ValueError as e:
        raise InvalidParameter(f"Invalid value {value} for cpuset {what}: {e}") from None
    if available and not wanted <= have:
        noun = "CPUs" if what == "cpus" else "memory nodes"
        raise InvalidParameter(f"Requested {noun} are not available - requested {value}, "
                               f"available: {available}")
