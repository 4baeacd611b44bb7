"""Container logs: written by conmon in k8s-file format, served with json-file semantics.

Docker's json-file driver keeps stdout and stderr apart, rotates at `max-size`
keeping `max-file` files, and `docker logs` filters by since/until/tail and can
follow. We keep conmon's format (rewriting it would cost a process or a pipe hop
per container) and give the same behaviour, in three parts:

    records.py    the files (container.log, .1 ... .N) and the record format;
                  joining partial records back into lines
    reader.py     read_logs: history, tail, since/until, follow across rotations
    rotation.py   --log-opt validation, rotate(), LogRotator (the daemon rotates;
                  conmon reopens)

This package's names below are the interface the engine uses.
"""

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
from .rotation import LogRotator, RotationPolicy, parse_log_opts, parse_size, rotate

__all__ = [
    "LOG_NAME", "Assembler", "LogRotator", "Message", "RotationPolicy", "format_timestamp",
    "log_files", "log_path", "parse_log_opts", "parse_record", "parse_size", "parse_timestamp",
    "read_logs", "rotate",
]
