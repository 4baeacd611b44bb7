"""`docker top`: the host's `ps`, narrowed to the processes of one container.

As dockerd (daemon/top_unix.go) does it: the runtime lists the container's host
pids; `ps` runs on the host with the client's arguments (`-ef` by default) plus
`-q<pid,...>`; if ps refuses that combination (forest listings, -C, ...) it runs
again without the pid list and the rows are filtered here. When the client asks
for its own columns (o / -o / --format), `-opid` is put in front so that rows can
still be matched, and that extra first column is dropped from the answer.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from ...errors import Conflict, InternalError, InvalidParameter
from ..runtime.contract import Supervisor
from .store import ContainerStore

_ASCII_SPACE = re.compile(r"[\t\n\f\r ]+")

# ps options whose value may be the next argument (long GNU style / short / BSD letters).
_LONG_WITH_VALUE = frozenset({
    "--cols", "--columns", "--Group", "--group", "--lines", "--pid", "--ppid", "--quick-pid",
    "--rows", "--sid", "--sort", "--tty", "--User", "--user", "--width",
})
_SHORT_WITH_VALUE = frozenset({"-C", "-G", "-g", "-O", "-p", "-q", "-s", "-t", "-u", "-U"})
_BSD_WITH_VALUE = frozenset("pqtUOk")


def fields(line: str) -> list[str]:
    """Whitespace-separated fields, ASCII whitespace only (a command may hold others)."""
    return [f for f in _ASCII_SPACE.split(line) if f]


def custom_fields(args: list[str]) -> bool:
    """Does this ps command line choose its own columns (o, -o, --format)?

    Option values are skipped, so `-C ocmd` or `-U root` do not count."""
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith(("-o", "o", "--format")):
            return True
        if not arg:
            continue
        if len(arg) > 2 and arg.startswith("--"):
            name, has_value, _ = arg.partition("=")
            if name == "--format":
                return True
            if name in _LONG_WITH_VALUE:
                skip = not has_value
                continue
        if len(arg) >= 2 and arg[0] == "-":
            if arg[:2] == "-o":
                return True
            if arg[:2] in _SHORT_WITH_VALUE:
                skip = len(arg) == 2
                continue
        for i, ch in enumerate(arg):
            if ch == "o":
                return True
            if ch in _BSD_WITH_VALUE:
                skip = i + 1 == len(arg)
                break
    return False


def parse_ps_output(output: str, pids: set[int], pid_first: bool) -> dict[str, Any]:
    """{"Titles", "Processes"} for the rows whose PID is one of pids.

    Thread rows (`ps -m`/`-L` print "-" as their PID) follow their process."""
    lines = output.split("\n")
    titles = fields(lines[0]) if lines else []
    if pid_first:
        if not titles or titles[0] != "PID":
            raise InvalidParameter("Couldn't find PID field in ps output")
        pid_index, first = 0, 1
        titles = titles[1:]
    else:
        if "PID" not in titles:
            raise InvalidParameter("Couldn't find PID field in ps output")
        pid_index, first = titles.index("PID"), 0
    processes: list[list[str]] = []

    def add(row: list[str]) -> None:
        row = row[first:]
        n = len(titles)
        # The last column (the command) may contain spaces: join the overhang.
        processes.append(row[:n - 1] + [" ".join(row[n - 1:])] if n else row)

    in_container = False
    for line in lines[1:]:
        if not line:
            continue
        row = fields(line)
        if len(row) <= pid_index:
            continue
        value = row[pid_index]
        if value == "-":
            if in_container:
                add(row)
            continue
        try:
            pid = int(value)
        except ValueError:
            raise InvalidParameter(f"Unexpected pid '{value}': invalid syntax") from None
        in_container = pid in pids
        if in_container:
            add(row)
    return {"Titles": titles, "Processes": processes}


async def _ps(args: list[str]) -> tuple[int, bytes, bytes]:
    if any("\0" in a for a in args):   # exec would refuse it (Go: "invalid argument")
        raise InvalidParameter("ps: fork/exec ps: invalid argument")
    try:
        proc = await asyncio.create_subprocess_exec(
            "ps", *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as e:
        raise InternalError(f"ps: {e}") from e
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


async def top(store: ContainerStore, monitor: Supervisor, ref: str, ps_args: str | None
              ) -> dict[str, Any]:
    """GET /containers/{id}/top?ps_args=..."""
    custom = bool(ps_args)
    text = ps_args or "-ef"
    if "\0" in text:  # no argument vector can hold it
        raise InvalidParameter("ps: invalid argument")
    c = store.get(ref)
    if c.state.status == "restarting":
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    if c.state.status not in ("running", "paused"):
        raise Conflict(f"Container {c.id} is not running")
    runtime = monitor.load(c.id).oci_runtime()
    pids = await runtime.ps(c.id)
    args = text.split(" ")
    pid_first = custom and custom_fields(args)
    if pid_first:
        args = ["-opid", *args]
    code, out, err = await _ps([*args, "-q" + ",".join(str(p) for p in pids)])
    if code != 0:
        # Some listings (forest, -C ...) cannot take a pid list: filter ourselves.
        code, out, err = await _ps(args)
        if code != 0:
            # ps refused the client's ps_args: dockerd answers 500, a client error is 400
            first_line = err.decode(errors="replace").split("\n", 1)[0]
            raise InvalidParameter(f"ps: {first_line or f'exit status {code}'}")
    result = parse_ps_output(out.decode(errors="replace"), set(pids), pid_first)
    store.event(c, "top")
    return result
