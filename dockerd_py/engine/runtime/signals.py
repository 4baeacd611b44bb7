"""Signal names and numbers as Docker reads them (`docker kill -s`, StopSignal).

`parse_signal` is moby/sys/signal.ParseSignal on Linux (the number a name or a
number stands for); `signal_name` is the argument the OCI runtime's `kill` takes.
"""

from __future__ import annotations

import re
import signal as _signal

from ...errors import InvalidParameter, InvalidValue

_SIGNALS = {"ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8,
            "HUP": 1, "ILL": 4, "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29,
            "PROF": 27, "PWR": 30, "QUIT": 3, "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31,
            "TERM": 15, "TRAP": 5, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10,
            "USR2": 12, "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25, "RTMIN": 34,
            "RTMAX": 64, **{f"RTMIN+{i}": 34 + i for i in range(1, 16)},
            **{f"RTMAX-{i}": 64 - i for i in range(1, 15)}}


def parse_signal(raw: str) -> int:
    """A non-zero number, or a name with or without SIG; InvalidValue("invalid signal: x")."""
    if re.fullmatch(r"[+-]?[0-9]+", raw) and -(2**63) <= int(raw) < 2**63:
        if int(raw) != 0:
            return int(raw)
    elif (name := raw.upper().removeprefix("SIG")) in _SIGNALS:
        return _SIGNALS[name]
    raise InvalidValue(f"invalid signal: {raw}")


def signal_name(sig: int | str) -> str:
    """`kill` argument: a number or a name, with or without the SIG prefix."""
    if isinstance(sig, int):
        return str(sig)
    name = sig.strip().upper()
    if name.isascii() and name.isdigit():     # not "²": str.isdigit() is Unicode's
        return name
    name = name.removeprefix("SIG")
    try:
        _signal.Signals["SIG" + name]
    except KeyError:
        if not re.fullmatch(r"RTMIN(\+\d+)?|RTMAX(-\d+)?", name, re.ASCII):
            raise InvalidParameter(f"Invalid signal: {sig}") from None
    return name
