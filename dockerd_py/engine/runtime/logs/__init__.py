"""Container logs: the logging drivers, their files and the journal.

Docker's json-file and local drivers keep stdout and stderr apart, rotate at
`max-size` keeping `max-file` files (compressed or not), and `docker logs`
filters by since/until/tail and can follow. conmon writes the files in its
k8s-file format (rewriting them would cost a process or a pipe hop per
container) or, for journald, the host's journal; this package gives dockerd's
behaviour on top:

    drivers.py    which drivers exist, their options checked at create and read
                  at start (dockerd's wording), LogSettings for the monitor
    options.py    option values as Go reads them (sizes, Atoi, ParseBool, regexps)
    logtag.py     the `tag` option's template
    records.py    the files (container.log, .1 ... .N[.gz]) and the record format;
                  joining partial records back into lines
    reader.py     read_logs: history, tail, since/until, follow across rotations
    rotation.py   rotate(), compression, LogRotator (the daemon rotates; conmon
                  reopens)
    journal.py    journald: is it there, read_journal (through journalctl)

This package's names below are the interface the engine uses.
"""

from .drivers import (
    DEFAULT_DRIVER,
    FILE_DRIVERS,
    LogInfo,
    LogSettings,
    LogsNotReadable,
    driver_of,
    merge,
    open_driver,
    validate,
)
from .journal import enabled as journald_enabled
from .journal import read_journal
from .reader import read_logs
from .records import (
    LOG_NAME,
    Assembler,
    Message,
    format_timestamp,
    log_files,
    log_path,
    parse_record,
    parse_timestamp,
)
from .rotation import LogRotator, RotationPolicy, compress_rotated, rotate

__all__ = [
    "DEFAULT_DRIVER", "FILE_DRIVERS", "LOG_NAME", "Assembler", "LogInfo", "LogRotator",
    "LogSettings", "LogsNotReadable", "Message", "RotationPolicy", "compress_rotated",
    "driver_of", "format_timestamp", "journald_enabled", "log_files", "log_path", "merge",
    "open_driver", "parse_record", "parse_timestamp", "read_journal", "read_logs", "rotate",
    "validate",
]
