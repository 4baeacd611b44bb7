"""Logging drivers: what each accepts at create, and what it does when the container starts.

dockerd checks a container's LogConfig twice, and so do we, with its wording:
- at create (and for the daemon's log-opts when the daemon starts), `validate`:
  the options every driver shares (mode, max-buffer-size, cache-*), whether the
  driver exists, and each driver's option names (400, InvalidParameter);
- when the container starts, `open_driver`: the values (sizes, counts, booleans,
  regexps, the tag template), as the driver's constructor reads them; a failure
  fails the start with "failed to initialize logging driver: ..." (500).

The drivers:
  json-file  conmon's k8s-file in the container's directory, rotated by the
             daemon when max-size is given (max-file, default 1; compress)
  local      the same files, rotated by default at 20 MB x 5 files, compressed
  journald   conmon writes to the host's journal (CONTAINER_ID, CONTAINER_ID_FULL,
             CONTAINER_NAME, CONTAINER_TAG, SYSLOG_IDENTIFIER, PRIORITY, MESSAGE);
             journal.py reads it back
  none       nothing is recorded; reading is refused (LogsNotReadable, 501)
Any other name (syslog, gelf, fluentd, a plugin) is refused at create as dockerd
refuses a driver it does not have. mode/max-buffer-size are accepted and have no
effect: conmon never drops output. The labels/env attributes are validated but
not recorded (they only show with `docker logs --details`, or as extra journal
fields conmon 2.1.6 cannot write).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ....errors import InternalError, InvalidParameter, NotImplementedByDaemon
from .logtag import TagError, TagUnsupported, render_tag
from .options import atoi, check_regexp, human_size, parse_bool, ram_in_bytes
from .rotation import RotationPolicy

DEFAULT_DRIVER = "json-file"
FILE_DRIVERS = frozenset({"json-file", "local"})
DRIVERS = FILE_DRIVERS | {"journald", "none"}

LOCAL_MAX_SIZE = 20 * 1024 * 1024
LOCAL_MAX_FILE = 5

# Read by dockerd itself for every driver (the cache-* ones by its dual-logging cache).
_SHARED = frozenset({"mode", "max-buffer-size", "cache-disabled", "cache-max-size",
                     "cache-max-file", "cache-compress"})
_ATTRIBUTES = frozenset({"labels", "labels-regex", "env", "env-regex", "tag"})
_ROTATION = frozenset({"max-file", "max-size", "compress"})
_KEYS = {"json-file": _ROTATION | _ATTRIBUTES, "local": _ROTATION, "journald": _ATTRIBUTES}
_UNKNOWN = {"json-file": "unknown log opt '{}' for json-file log driver",
            "local": "unknown log opt '{}' for log driver local",
            "journald": "unknown log opt '{}' for journald log driver"}


class LogsNotReadable(NotImplementedByDaemon):
    """The container's driver records nothing that can be read back (dockerd's 501)."""

    def __init__(self, driver: str) -> None:
        super().__init__("configured logging driver does not support reading")
        self.driver = driver


def driver_of(host_config: Mapping[str, Any]) -> str:
    """The driver of a stored container (records from before drivers applied: json-file)."""
    return str((host_config.get("LogConfig") or {}).get("Type") or DEFAULT_DRIVER)


def merge(log_config: Mapping[str, Any] | None, default_driver: str,
          default_opts: Mapping[str, str]) -> dict[str, Any]:
    """A container's LogConfig with the daemon's defaults (moby mergeAndVerifyLogConfig):
    no Type means the daemon's driver; the daemon's log-opts apply to that driver
    only, except the cache-* ones, which apply to all."""
    given = dict(log_config or {})
    driver = str(given.get("Type") or default_driver)
    opts = {str(k): str(v) for k, v in (given.get("Config") or {}).items()}
    for key, value in default_opts.items():
        if driver == default_driver or key.startswith("cache-"):
            opts.setdefault(key, value)
    return {"Type": driver, "Config": opts}


def validate(driver: str, opts: Mapping[str, str]) -> None:
    """The checks dockerd makes at create (moby logger.ValidateLogOpts): InvalidParameter."""
    if driver == "none":
        return
    mode = opts.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise InvalidParameter(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in opts:
        if mode != "non-blocking":
            raise InvalidParameter("logger: max-buffer-size option is only supported with "
                                   "'mode=non-blocking'")
        try:
            ram_in_bytes(opts["max-buffer-size"])
        except ValueError as e:
            raise InvalidParameter(f"error parsing option max-buffer-size: {e}") from None
    if opts.get("cache-disabled"):
        try:
            parse_bool(opts["cache-disabled"])
        except ValueError:
            raise InvalidParameter("invalid value for option cache-disabled: "
                                   f"{opts['cache-disabled']}") from None
    if driver not in _KEYS:
        raise InvalidParameter(f'error looking up logging plugin {driver}: plugin "{driver}" '
                               "not found")
    for key in opts:
        if key not in _SHARED and key not in _KEYS[driver]:
            raise InvalidParameter(_UNKNOWN[driver].format(key))


# --- when the container starts ----------------------------------------------------------

@dataclass(frozen=True)
class LogInfo:
    """What a tag template reads about the container (moby logger.Info)."""
    container_id: str
    name: str              # without the leading "/"
    image_name: str        # as the client named it
    image_id: str          # "sha256:..."
    command: str           # entrypoint and arguments, space-separated
    log_path: str = ""

    def fields(self) -> dict[str, str]:
        return {"ID": self.container_id[:12], "FullID": self.container_id,
                "ContainerID": self.container_id, "Name": self.name,
                "ContainerName": "/" + self.name, "ImageID": self.image_id[:12],
                "ImageFullID": self.image_id, "ContainerImageID": self.image_id,
                "ImageName": self.image_name, "ContainerImageName": self.image_name,
                "ContainerEntrypoint": self.command.split(" ", 1)[0],
                "Command": self.command, "LogPath": self.log_path, "DaemonName": "docker",
                "Hostname": os.uname().nodename}


@dataclass(frozen=True)
class LogSettings:
    """A started container's logging: files (and how they rotate), the journal, or nothing."""
    driver: str
    rotation: RotationPolicy | None = None   # json-file, local
    journald_tag: str | None = None          # journald: CONTAINER_TAG, SYSLOG_IDENTIFIER

    @property
    def files(self) -> bool:
        return self.driver in FILE_DRIVERS


def open_driver(driver: str, opts: Mapping[str, str], info: LogInfo,
                journald_enabled: Callable[[], bool]) -> LogSettings:
    """The driver's constructor: its options' values read as dockerd reads them;
    InternalError "failed to initialize logging driver: ..." when one is wrong."""
    try:
        if driver == "none":
            return LogSettings("none")
        if driver == "local":
            return LogSettings("local", rotation=_local_rotation(opts))
        if driver == "json-file":
            rotation = _json_file_rotation(opts)
            _attributes(opts)
            _tag(opts, info, "", strict=False)
            return LogSettings("json-file", rotation=rotation)
        if driver == "journald":
            if not journald_enabled():
                raise ValueError("journald is not enabled on this host")
            tag = _tag(opts, info, "{{.ID}}", strict=True)
            _attributes(opts)
            return LogSettings("journald", journald_tag=tag)
    except ValueError as e:
        raise InternalError(f"failed to initialize logging driver: {e}") from None
    raise InvalidParameter(f'error looking up logging plugin {driver}: plugin "{driver}" '
                           "not found")


def _json_file_rotation(opts: Mapping[str, str]) -> RotationPolicy:
    max_size = None
    if "max-size" in opts:
        max_size = human_size(opts["max-size"])
        if max_size <= 0:
            raise ValueError("max-size must be a positive number")
    max_file = 1
    if "max-file" in opts:
        max_file = atoi(opts["max-file"])
        if max_file < 1:
            raise ValueError("max-file cannot be less than 1")
    compress = False
    if "compress" in opts:
        compress = parse_bool(opts["compress"])
        if compress and (max_file == 1 or max_size is None):
            raise ValueError("compress cannot be true when max-file is less than 2 or "
                             "max-size is not set")
    return RotationPolicy(max_size, max_file, compress)


def _local_rotation(opts: Mapping[str, str]) -> RotationPolicy:
    max_size, max_file, compress = LOCAL_MAX_SIZE, LOCAL_MAX_FILE, True
    if "max-size" in opts:
        try:
            max_size = human_size(opts["max-size"])
        except ValueError as e:
            raise ValueError(f"invalid value for max-size: {opts['max-size']}: {e}") from None
    if "max-file" in opts:
        try:
            max_file = atoi(opts["max-file"])
        except ValueError as e:
            raise ValueError(f"invalid value for max-file: {opts['max-file']}: {e}") from None
    if "compress" in opts:
        try:
            compress = parse_bool(opts["compress"])
        except ValueError as e:
            raise ValueError(f"error reading compress log option: {e}") from None
    if max_file < 0:
        raise ValueError("max file count cannot be less than 0")
    if compress and max_file <= 1:
        raise ValueError("compression cannot be enabled when max file count is 1")
    # max-file 0 keeps one file, as 1 does; max-size 0 rotates at every write.
    return RotationPolicy(max_size, max(max_file, 1), compress)


def _attributes(opts: Mapping[str, str]) -> None:
    """The regexps of labels-regex and env-regex compile (moby Info.ExtraAttributes)."""
    for key in ("labels-regex", "env-regex"):
        if opts.get(key):
            check_regexp(opts[key])


def _tag(opts: Mapping[str, str], info: LogInfo, default: str, *, strict: bool) -> str:
    """The rendered tag (moby loggerutils.ParseLogTag). strict: it is used, so a template
    this daemon cannot evaluate is refused rather than passed over."""
    try:
        tag = render_tag(opts.get("tag") or default, info.fields())
    except TagError as e:
        raise ValueError(str(e)) from None
    except TagUnsupported as e:
        if strict:
            raise ValueError(f"template: log-tag: {e} is not supported by this daemon") from None
        return ""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in tag):
        raise ValueError("a log tag cannot contain control characters")
    return tag
