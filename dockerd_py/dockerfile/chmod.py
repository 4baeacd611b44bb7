"""COPY/ADD --chmod: an octal mode, or a symbolic one as chmod(1) writes it.

Pure. BuildKit accepts "0755" (at most 07777) and symbolic modes ("u+x",
"a=r,u+w", "go-w", "+X", "u=g"), applied to each copied file's own mode with
a umask of 0 (its dchapes-mode package, BSD setmode's grammar): clauses
separated by commas, each `[ugoa]*` then one or more `[+-=][rwxXst]*|[+-=][ugo]`.
`X` is execute only for directories and files that already have an execute bit.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DockerfileError

_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o0007}
_SHIFT = {"u": 6, "g": 3, "o": 0}


@dataclass(frozen=True)
class _Action:
    who: int          # the bits this action may touch
    op: str           # "+", "-", "="
    perms: str        # letters from "rwxXst", or one of "ugo" (copy those bits)


@dataclass(frozen=True)
class Chmod:
    octal: int | None = None
    actions: tuple[_Action, ...] = ()

    def apply(self, mode: int, is_dir: bool) -> int:
        """The new permission bits of a file with permission bits `mode`."""
        if self.octal is not None:
            return self.octal
        original = mode
        for a in self.actions:
            if a.perms in ("u", "g", "o"):
                triple = (mode >> _SHIFT[a.perms]) & 0o7
                bits = triple * 0o111
            else:
                bits = 0
                for ch in a.perms:
                    bits |= {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000,
                             "t": 0o1000}.get(ch, 0)
                    if ch == "X" and (is_dir or original & 0o111):
                        bits |= 0o111
            who = a.who | (0o1000 if "t" in a.perms else 0)
            if a.op == "+":
                mode |= bits & who
            elif a.op == "-":
                mode &= ~(bits & who)
            else:
                mode = (mode & ~(a.who & 0o6777)) | (bits & who)
        return mode & 0o7777


def _error(text: str) -> DockerfileError:
    return DockerfileError(f"invalid chmod parameter: '{text}'. it should be octal string "
                           "and between 0 and 07777")


def parse_chmod(text: str) -> Chmod:
    if not text:
        raise _error(text)
    if text[0].isdigit():
        if not all(c in "01234567" for c in text) or int(text, 8) > 0o7777:
            raise _error(text)
        return Chmod(octal=int(text, 8))
    actions: list[_Action] = []
    for clause in text.split(","):
        i, who = 0, 0
        while i < len(clause) and clause[i] in "ugoa":
            who |= 0o6777 if clause[i] == "a" else _WHO[clause[i]]
            i += 1
        if who == 0:
            who = 0o6777
        if i == len(clause):
            raise DockerfileError(f"invalid chmod parameter: '{text}': invalid syntax")
        while i < len(clause):
            op = clause[i]
            if op not in "+-=":
                raise DockerfileError(f"invalid chmod parameter: '{text}': invalid syntax")
            i += 1
            start = i
            if i < len(clause) and clause[i] in "ugo":
                i += 1
            else:
                while i < len(clause) and clause[i] in "rwxXst":
                    i += 1
            actions.append(_Action(who, op, clause[start:i]))
    return Chmod(actions=tuple(actions))
