"""Error categories shared by the engine, the builder and the API.

The engine raises these; `api/server.py` alone maps a category to an HTTP
status (as moby's errdefs + httpstatus do). Messages are Docker's wording
where clients parse them.
"""


class DaemonError(Exception):
    """Base class: anything the daemon reports to a client as an error."""

    status = 500


class InvalidParameter(DaemonError):
    status = 400


class Unauthorized(DaemonError):
    status = 401


class Forbidden(DaemonError):
    status = 403


class NotFound(DaemonError):
    status = 404


class Conflict(DaemonError):
    status = 409


class NotModified(DaemonError):
    status = 304


class NotImplementedByDaemon(DaemonError):
    status = 501


class Unavailable(DaemonError):
    status = 503


class InternalError(DaemonError):
    status = 500


def no_such_image(ref: str) -> NotFound:
    return NotFound(f"No such image: {ref}")


class InvalidValue(InvalidParameter, ValueError):
    """A value in one of Docker's notations that does not parse (a signal name, a port
    spec, a `--change` line): 400 to a client, a ValueError to pure callers."""
