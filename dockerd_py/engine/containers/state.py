"""The container state machine: every legal change of State.status, as one table.

    created     -> running (start)
    running     -> paused (pause), exited (its process ended)
    paused      -> running (unpause), exited (killed while paused)
    exited      -> running (start), restarting (its restart policy applies)
    restarting  -> running (the back-off ended), exited (cancelled, or the start failed)

A start that fails leaves the container "created" if it never ran, "exited"
otherwise; saving a record without changing its status is always allowed.
"removing" and "dead" are statuses dockerd reports; this daemon removes a
container in one step under its lock and never enters them. The store checks
every save against this table, so a change the machine does not allow is a bug
that fails loudly instead of a record that clients misread.
"""

from __future__ import annotations

from ...errors import InternalError

TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"created", "running"}),
    "running": frozenset({"running", "paused", "exited"}),
    "paused": frozenset({"paused", "running", "exited"}),
    "exited": frozenset({"exited", "running", "restarting"}),
    "restarting": frozenset({"restarting", "running", "exited"}),
}


def check_transition(cid: str, old: str, new: str) -> None:
    if new not in TRANSITIONS.get(old, frozenset()):
        raise InternalError(f"container {cid}: illegal state change {old} -> {new}")
