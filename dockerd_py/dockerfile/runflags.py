"""RUN's BuildKit flags: --mount (one per mount), --network and --security.

Pure: the value of a flag in, a checked record out, with BuildKit's
(instructions/commands_runmount.go) defaults and error wording. A mount's
fields are expanded with the step's variables before they are parsed (`from`
excepted, as BuildKit); the caller passes the expander.
"""

from __future__ import annotations

import csv
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import DockerfileError

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING = ("shared", "private", "locked")
NETWORKS = ("default", "none", "host")
SECURITY = ("sandbox", "insecure")
_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size",
         "mode", "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_RAM = re.compile(r"(?i)^([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(i?b?)$")


@dataclass(frozen=True)
class Mount:
    type: str = "bind"
    from_: str = ""           # a stage, an image or a named context ("": the build context)
    source: str = ""
    target: str = ""
    readonly: bool = True
    size: int = 0             # tmpfs: bytes (0: no limit)
    id: str = ""              # cache/secret/ssh id
    sharing: str = ""         # cache: shared (default), private, locked
    required: bool = False    # secret/ssh
    env: str | None = None    # secret: the variable to put it in
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def cache_id(self) -> str:
        return self.id or posixpath.normpath(self.target)

    @property
    def secret_id(self) -> str:
        if self.source:
            return self.source
        return self.id or posixpath.basename(self.target)

    @property
    def secret_target(self) -> str | None:
        """Where the secret file goes (None: only in env)."""
        if self.env is not None and not self.target:
            return None
        return self.target or "/run/secrets/" + posixpath.basename(self.secret_id)


def _bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DockerfileError(f"invalid value for {key}: {value}")


def _uint(key: str, value: str, base: int) -> int:
    try:
        number = int(value, base)
    except ValueError:
        number = -1
    if not 0 <= number < 1 << 32 or not value.isalnum():
        raise DockerfileError(f"invalid value {value} for {key}")
    return number


def ram_in_bytes(value: str) -> int:
    """go-units RAMInBytes: binary units ("64m" = 64 MiB)."""
    found = _RAM.match(value.strip())
    if not found:
        raise ValueError(value)
    scale = 1024 ** " kmgtp".index((found.group(2) or " ").lower())
    return int(float(found.group(1)) * scale)


def parse_mount(value: str, expand: Callable[[str], str] = lambda w: w) -> Mount:
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as e:
        raise DockerfileError(f"failed to parse csv mounts: {e}") from None
    kind, ro_auto = "bind", True
    f: dict[str, object] = {}
    for field in fields:
        key, eq, raw = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                f["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                f["readonly"], ro_auto = False, False
            elif key == "required" and kind in ("secret", "ssh"):
                f["required"] = True
            elif key == "required":
                raise DockerfileError(f"unexpected key '{key}' for mount type '{kind}'")
            else:
                raise DockerfileError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "from":
            if "$" in raw[:-1]:
                raise DockerfileError(f"'{key}' doesn't support variable expansion, "
                                      "define alias stage instead")
        else:
            raw = expand(raw)
        if key == "type":
            if raw.lower() not in MOUNT_TYPES:
                raise DockerfileError(f'unsupported mount type "{raw}"')
            kind = raw.lower()
        elif key == "from":
            f["from_"] = raw
        elif key in ("source", "src"):
            f["source"] = raw
        elif key in ("target", "dst", "destination"):
            f["target"] = raw
        elif key in ("readonly", "ro"):
            f["readonly"], ro_auto = _bool(key, raw), False
        elif key in ("readwrite", "rw"):
            f["readonly"], ro_auto = not _bool(key, raw), False
        elif key == "required":
            if kind not in ("secret", "ssh"):
                raise DockerfileError(f"unexpected key '{key}' for mount type '{kind}'")
            f["required"] = _bool(key, raw)
        elif key == "size":
            if kind != "tmpfs":
                raise DockerfileError(f"unexpected key '{key}' for mount type '{kind}'")
            try:
                f["size"] = ram_in_bytes(raw)
            except ValueError:
                raise DockerfileError(f"invalid value for {key}: {raw}") from None
        elif key == "id":
            f["id"] = raw
        elif key == "sharing":
            if raw.lower() not in SHARING:
                raise DockerfileError(f'unsupported sharing value "{raw}"')
            f["sharing"] = raw.lower()
        elif key == "mode":
            f["mode"] = _uint("mode", raw, 8)
        elif key in ("uid", "gid"):
            f[key] = _uint(key, raw, 10)
        elif key == "env":
            f["env"] = raw
        else:
            raise DockerfileError(f"unexpected key '{key}' in '{field}'")
    if kind not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if key in f:
                raise DockerfileError(f'{key} not allowed for "{kind}" type mounts')
    if ro_auto:
        f["readonly"] = kind not in ("cache", "tmpfs")
    mount = Mount(type=kind, **f)  # type: ignore[arg-type]
    if kind == "secret":
        if mount.from_:
            raise DockerfileError("secret mount should not have a from")
        if mount.sharing:
            raise DockerfileError("secret mount should not define sharing")
        if not (mount.source or mount.target or mount.id):
            raise DockerfileError("invalid secret mount. one of source, target required")
        if mount.source and mount.id:
            raise DockerfileError("both source and id can't be set")
    if mount.sharing and kind != "cache":
        raise DockerfileError(f"invalid cache sharing set for {kind} mount")
    if kind == "ssh" and mount.source:
        raise DockerfileError("ssh does not support source")
    if kind in ("bind", "cache", "tmpfs") and not mount.target:
        raise DockerfileError(f"mount target required for {kind} mount")  # (BuildKit: "/")
    return mount


def parse_mounts(values: str, expand: Callable[[str], str] = lambda w: w) -> list[Mount]:
    """The --mount flags of a RUN (the parser joins repeated ones with newlines)."""
    return [parse_mount(v, expand) for v in values.split("\n") if v]


def check_network(value: str) -> str:
    if value not in NETWORKS:
        raise DockerfileError(f"unsupported network mode {value!r}: expected one of "
                              + ", ".join(NETWORKS))
    return value


def check_security(value: str) -> str:
    if value not in SECURITY:
        raise DockerfileError(f"unsupported security mode {value!r}: expected sandbox or "
                              "insecure")
    return value
