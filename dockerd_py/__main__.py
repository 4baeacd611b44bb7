"""dockerd-py: command-line entry point (flags as dockerd's)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import sys
from typing import Any

from . import config
from .daemon import Daemon, set_log_level
from .engine.modes import DAEMON_UMASK
from .errors import DaemonError
from .version import API_VERSION, VERSION


def _go_bool(text: str) -> bool:
    """A boolean flag value as Go's strconv.ParseBool reads it."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f'invalid boolean value "{text}"')


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockerd-py", description="A Docker Engine-compatible daemon")
    p.add_argument("-H", "--host", dest="hosts", action="append",
                   help="daemon socket(s) to connect to (unix:///path, tcp://host:port)")
    p.add_argument("--data-root",
                   help=f"root of persistent state (default {config.DEFAULT_DATA_ROOT})")
    p.add_argument("--exec-root",
                   help=f"root of runtime state (default {config.DEFAULT_EXEC_ROOT})")
    p.add_argument("--config-file", default=None,
                   help=f"daemon configuration file (default {config.DEFAULT_CONFIG_FILE})")
    p.add_argument("-p", "--pidfile", help="path to use for the daemon PID file")
    p.add_argument("-l", "--log-level", choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("-D", "--debug", action="store_true", default=None)
    p.add_argument("-G", "--group", help="group for the unix socket (default docker)")
    p.add_argument("--label", dest="labels", action="append")
    p.add_argument("--default-runtime")
    p.add_argument("--live-restore", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--tls", action="store_true", default=None)
    p.add_argument("--tlsverify", action="store_true", default=None)
    p.add_argument("--tlscacert")
    p.add_argument("--tlscert")
    p.add_argument("--tlskey")
    p.add_argument("--storage-driver", help="accepted for compatibility; always overlay")
    p.add_argument("-b", "--bridge", help="default bridge interface (none: no default bridge)")
    p.add_argument("--bip", help="default bridge gateway address and subnet (CIDR)")
    p.add_argument("--fixed-cidr", help="subnet of the default bridge for container addresses")
    for flag in ("--iptables", "--ip-forward", "--userland-proxy"):  # dockerd's --flag=false
        p.add_argument(flag, nargs="?", const=True, default=None, type=_go_bool,
                       metavar="true|false")
    p.add_argument("--cri-socket",
                   help="serve the Kubernetes CRI on this unix socket (default: off)")
    p.add_argument("-v", "--version", action="store_true", help="print version and exit")
    return p


class LogfmtFormatter(logging.Formatter):
    """dockerd's log line: time="<RFC 3339, UTC>" level=info msg="..." """

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname,
                                                                record.levelname.lower())
        return (f'time="{when.isoformat(timespec="microseconds").replace("+00:00", "Z")}" '
                f"level={level} msg={json.dumps(message)}")


_FLAG_FIELDS = ("hosts", "data_root", "exec_root", "pidfile", "log_level", "debug", "group",
                "labels", "default_runtime", "live_restore", "tls", "tlsverify", "tlscacert",
                "tlscert", "tlskey", "bridge", "bip", "fixed_cidr", "iptables", "ip_forward",
                "userland_proxy", "cri_socket")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.version:
        print(f"dockerd-py version {VERSION}, API {API_VERSION}")
        return 0
    flags: dict[str, Any] = {}
    for name in _FLAG_FIELDS:
        value = getattr(args, name)
        if value is not None:
            flags[name] = tuple(value) if isinstance(value, list) else value
    # Secrets (environments, volume options, logs) land in files: private unless made
    # otherwise (engine/modes.py).
    os.umask(DAEMON_UMASK)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    logging.basicConfig(handlers=[handler])
    try:
        cfg = config.build(flags, config_file=args.config_file or config.DEFAULT_CONFIG_FILE,
                           file_required=args.config_file is not None)
        set_log_level(cfg.log_level)
        asyncio.run(Daemon(cfg).run())
    except DaemonError as e:
        print(f"failed to start daemon: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
