"""Volume records, their rows, and the local driver's checks of names and options."""

from __future__ import annotations

import datetime
import json
import re
import secrets
import sqlite3
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import InvalidParameter

DEFAULT_DRIVER = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
DATA_DIR = "_data"

_VALID_OPTS = ("type", "o", "device", "size")
_REQUIRED_OPTS = (("device", ("type",)), ("type", ("device",)), ("o", ("device", "type")))


@dataclass(frozen=True)
class Volume:
    name: str
    driver: str
    mountpoint: str                   # <data-root>/volumes/<name>/_data
    created_at: str                   # RFC 3339, seconds, local offset ("Z" in UTC)
    labels: dict[str, str] | None     # None and {} are kept apart, as dockerd does
    options: dict[str, str] | None
    scope: str = "local"

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in (self.labels or {})

    @property
    def needs_mount(self) -> bool:
        opts = self.options or {}
        return bool(opts.get("device") or opts.get("type"))


def from_row(row: sqlite3.Row, mountpoint: str) -> Volume:
    return Volume(name=row["name"], driver=row["driver"], mountpoint=mountpoint,
                  created_at=row["created"], labels=_loads(row["labels"]),
                  options=_loads(row["options"]))


def _loads(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    value = json.loads(text)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None


def valid_name(name: str) -> bool:
    return re.fullmatch(NAME_CHARS + "+", name) is not None


def validate_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidParameter("volume name is too short, names should be at least two "
                               "alphanumeric characters")
    if not valid_name(name):
        raise InvalidParameter(
            f"{quote(name)} includes invalid characters for a local volume name, only "
            f"{quote(NAME_CHARS)} are allowed. If you intended to pass a host directory, "
            "use absolute path")


def validate_options(opts: Mapping[str, str]) -> None:
    """The local driver's checks (moby volume/local/local_unix.go validateOpts)."""
    for key, value in opts.items():
        if key not in _VALID_OPTS:
            raise InvalidParameter(f"invalid option: {quote(key)}")
        if "\0" in value:  # mount(8)'s argv, mount(2)'s strings: the kernel refuses it
            raise InvalidParameter(f"invalid option {quote(key)}: invalid argument")
    if opts.get("type") == "cifs" and opts.get("device"):
        try:
            port = urllib.parse.urlsplit(opts["device"]).port
        except ValueError as e:
            raise InvalidParameter(f"error parsing mount device url: {e}") from None
        if port is not None:
            raise InvalidParameter("port not allowed in CIFS device URL, include 'port' in 'o='")
    if "size" in opts and ram_in_bytes(opts["size"]) > 0:
        raise InvalidParameter("quota size requested but no quota support")
    for key, needed in _REQUIRED_OPTS:
        if key in opts:
            for other in needed:
                if other not in opts:
                    raise InvalidParameter(f"missing required option: {quote(other)}")


_SIZE = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?", re.ASCII)


def ram_in_bytes(value: str) -> int:
    """go-units RAMInBytes: "10m", "1.5GiB", "512" (binary multiples)."""
    m = _SIZE.fullmatch(value)
    try:
        if m is None:
            raise ValueError
        number = float(m.group(1))
    except ValueError:
        raise InvalidParameter(f"invalid size: '{value}'") from None
    unit = 1024 ** " kmgtp".index((m.group(2) or " ").lower())
    return int(number * unit)


def quote(s: str) -> str:
    """Go's %q for the strings we quote (printable text)."""
    return json.dumps(s, ensure_ascii=False)


def rfc3339(ts: float) -> str:
    """Go's time.RFC3339 in local time: seconds, "Z" for UTC, else the offset."""
    text = datetime.datetime.fromtimestamp(int(ts)).astimezone().isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def random_name() -> str:
    while True:  # as moby's stringid: a short form that looks like a number is avoided
        name = secrets.token_hex(32)
        if not name[:12].isdigit():
            return name
