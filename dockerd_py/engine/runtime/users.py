"""Resolve `docker run -u user[:group]` against the image's /etc/passwd and /etc/group.

Pure: the caller reads the two files from the container's rootfs and passes their
text (None when a file is missing, `Unreadable` when it is there but cannot be read: a
directory, a FIFO, a device node, a file too large). The rules are those of moby's `user`
package:
- a number is always an id, found in the file or not; a name must be found;
- "user" alone takes the passwd entry's primary group plus every group in
  /etc/group that lists the user as a member; "user:group" takes exactly that group;
- the first matching line wins; malformed numeric fields read as 0;
- a file that cannot be read fails every lookup, numeric ones too, with the reason in Go's
  words: runc's init reads both files in the container for every process (its user spec
  is "uid:gid", so /etc/group is always parsed), where it fails the same way, or blocks
  on a FIFO, and the start with it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from dockerd_py.errors import InvalidParameter

MAX_ID = 2**31 - 1  # containerd/moby refuse ids above int32 range


class UserLookupError(InvalidParameter):
    """The user or a group of the spec cannot be resolved in the image."""


@dataclass(frozen=True)
class Unreadable:
    """/etc/passwd or /etc/group is there but is not read; `reason` as Go's os package
    words it, e.g. "read /etc/passwd: is a directory"."""
    reason: str


@dataclass(frozen=True)
class ResolvedUser:
    uid: int = 0
    gid: int = 0
    # As the process gets them: the primary gid first, then /etc/group memberships
    # (implicit form only), then --group-add; no duplicates.
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _field_int(text: str) -> int:
    # Go's strconv.Atoi with errors ignored: "+5" and "-5" parse, anything else is 0.
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return 0
    return int(text)


def _lines(text: str, comments: bool) -> Iterator[list[str]]:
    # Lazily, split at "\n" only and trimmed (Go's bufio.ScanLines + TrimSpace): a file of
    # millions of short lines costs no more memory than its text.
    for line in io.StringIO(text, newline="\n"):
        line = line.strip()
        # moby skips comments in /etc/group only; "#x" in passwd is a (useless) user.
        if line and not (comments and line.startswith("#")):
            yield line.split(":")


def iter_passwd(text: str) -> Iterator[PasswdEntry]:
    for f in _lines(text, comments=False):
        f += [""] * (7 - len(f))
        yield PasswdEntry(f[0], _field_int(f[2]), _field_int(f[3]), f[5])


def iter_group(text: str) -> Iterator[GroupEntry]:
    for f in _lines(text, comments=True):
        f += [""] * (4 - len(f))
        yield GroupEntry(f[0], _field_int(f[2]), tuple(f[3].split(",")) if f[3] else ())


def parse_passwd(text: str) -> list[PasswdEntry]:
    return list(iter_passwd(text))


def parse_group(text: str) -> list[GroupEntry]:
    return list(iter_group(text))


def _numeric(value: str) -> int | None:
    """The id a user/group argument names, or None for a name (Go Atoi + range check)."""
    body = value[1:] if value[:1] in "+-" else value
    if not body or not body.isascii() or not body.isdigit():
        return None
    number = int(value)
    if not 0 <= number <= MAX_ID:
        raise UserLookupError(f"uids and gids must be in range 0-{MAX_ID}")
    return number


def resolve_user(
    spec: str,
    passwd: str | Unreadable | None,
    group: str | Unreadable | None,
    group_add: Sequence[str] = (),
) -> ResolvedUser:
    """`Config.User` (+ `HostConfig.GroupAdd`) → ids for the OCI process.

    Errors carry Docker's wording, e.g. "unable to find user x: no matching entries
    in passwd file".
    """
    user_arg, _, rest = spec.partition(":")
    group_arg = rest.split(":", 1)[0]
    uid_arg, gid_arg = _numeric(user_arg), _numeric(group_arg)
    if isinstance(passwd, Unreadable):
        raise UserLookupError(f"unable to find user {user_arg or 0}: {passwd.reason}")
    users = iter_passwd(passwd) if passwd is not None else iter(())

    def groups() -> Iterator[GroupEntry]:  # one pass each, nothing kept
        return iter_group(group) if isinstance(group, str) else iter(())

    uid, gid, home, matched_name = 0, 0, "/", ""
    if not user_arg:
        found = next((u for u in users if u.uid == 0), None)
    elif uid_arg is not None:
        found = next((u for u in users if u.uid == uid_arg), None)
    else:
        found = next((u for u in users if u.name == user_arg), None)
    if found:
        uid, gid, home, matched_name = found.uid, found.gid, found.home, found.name
    elif user_arg:
        if uid_arg is None:
            raise UserLookupError(
                f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = uid_arg

    if isinstance(group, Unreadable):
        raise UserLookupError(f"unable to find groups for spec {matched_name or user_arg or 0}: "
                              f"{group.reason}")
    supplementary: list[int] = []
    if group_arg:
        if gid_arg is not None:
            match = next((g for g in groups() if g.gid == gid_arg), None)
        else:
            match = next((g for g in groups() if g.name == group_arg), None)
        if match:
            gid = match.gid
        elif gid_arg is None:
            raise UserLookupError(
                f"unable to find group {group_arg}: no matching entries in group file")
        else:
            gid = gid_arg
    elif matched_name:
        supplementary = [g.gid for g in groups() if matched_name in g.members]

    extra = additional_groups(group_add, groups)
    return ResolvedUser(uid, gid, tuple(dict.fromkeys([gid, *supplementary, *extra])), home)


def additional_groups(names: Sequence[str],
                      groups: Callable[[], Iterator[GroupEntry]]) -> list[int]:
    """`--group-add` values: names must exist in /etc/group, numbers are used as given.
    `groups()` gives the entries afresh for each name."""
    gids = []
    for name in names:
        number = _numeric(name)
        if number is not None:
            match = next((g for g in groups() if g.gid == number), None)
        else:
            match = next((g for g in groups() if g.name == name), None)
        if match:
            if not 0 <= match.gid <= MAX_ID:
                raise UserLookupError(f"uids and gids must be in range 0-{MAX_ID}")
            gids.append(match.gid)
        elif number is None:
            raise UserLookupError(
                f"unable to find group {name}: no matching entries in group file")
        else:
            gids.append(number)
    return gids
