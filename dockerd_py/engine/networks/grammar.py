"""The strict grammars of the values that reach the programs run as root for networking.

A bridge name ends up in `iptables-restore` input, in netavark's firewall rules (which
it splits on whitespace and quotes) and in `ip -batch` scripts; an alias in aardvark-dns'
line-based config (fields split on whitespace, names on ","), where a newline would add
a record of the client's choosing; a MAC in `ip -batch` scripts. Each is checked here
when a client hands it in, and again where it is used, so that a record written before
these checks can never smuggle a line or an argument into one of those programs.
"""

from __future__ import annotations

import json
import re

from ...errors import InvalidParameter

_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}"
                  r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}")

# Printable ASCII. Linux refuses "/", ":" and whitespace in an interface name; quotes
# and backslashes would be read as quoting by netavark's rule splitter and by
# iptables-restore; a leading "!" or a trailing "+" means negation or a wildcard to
# iptables.
_BRIDGE = re.compile(r"(?!!)[!#-&(-.0-9;-\[\]-~]{1,15}(?<!\+)")
_BRIDGE_TOO_LONG = "failed to check bridge interface existence: numerical result out of range"

_ALIAS = re.compile(r"[A-Za-z0-9_.-]{1,255}")

# One word of an `ip -batch` line: no whitespace, quote, "#" (a comment to ip) or "\"
# (a line continuation); never an option.
_BATCH_WORD = re.compile(r"[A-Za-z0-9_.:/@%+=,-]+")


def mac(value: str) -> str | None:
    """The MAC address in canonical form (02:42:ac:11:00:02), or None when the value is
    not a 48-bit address in one of Go's net.ParseMAC notations (colons, hyphens, dots)."""
    if not _MAC.fullmatch(value):
        return None
    digits = re.sub(r"[:.-]", "", value).lower()
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def check_mac(value: str, network: str | None = None) -> str:
    """The canonical MAC; InvalidParameter in dockerd's words (moby's validateEndpointSettings,
    under "invalid config for network N:" at container create)."""
    canonical = mac(value)
    if canonical is None:
        message = f"invalid MAC address {value}"
        raise InvalidParameter(message if network is None
                               else f"invalid config for network {network}: {message}")
    return canonical


def bridge_name_ok(name: str) -> bool:
    return bool(_BRIDGE.fullmatch(name)) and name not in (".", "..")


def check_bridge_name(name: str) -> None:
    """InvalidParameter with what dockerd answers when the kernel refuses the name."""
    if len(name.encode(errors="surrogatepass")) > 15:
        raise InvalidParameter(_BRIDGE_TOO_LONG)
    if not bridge_name_ok(name):
        raise InvalidParameter("invalid argument")


def alias_ok(alias: str) -> bool:
    """A DNS name: what aardvark-dns' config holds as one name, and all a resolver asks."""
    return bool(_ALIAS.fullmatch(alias))


def check_alias(alias: str) -> None:
    if not alias_ok(alias):
        raise InvalidParameter(f"invalid network alias {json.dumps(alias)}: only "
                               "[a-zA-Z0-9_.-] are allowed")


def batch_word_ok(word: str) -> bool:
    return bool(_BATCH_WORD.fullmatch(word)) and not word.startswith("-")
