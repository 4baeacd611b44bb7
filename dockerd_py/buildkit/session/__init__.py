"""The daemon's side of a BuildKit client session (`POST /session`).

The client (buildx) serves gRPC services over the hijacked connection and the daemon
calls them: the build context (FileSync), exports (FileSend), secrets, ssh agent
forwarding, registry credentials. The /session endpoint (bk-grpc) makes the `Session`;
the builder uses the functions and providers here.
"""

from .auth import SessionAuth
from .filesync import send_directory, send_tar, sync_directory
from .record import (
    HEADER_ID,
    HEADER_METHOD,
    HEADER_NAME,
    HEADER_SHARED_KEY,
    NotFound,
    Session,
    SessionError,
    SessionHeaders,
    Unsupported,
    parse_headers,
)
from .secrets import SessionSecrets
from .ssh import SessionSSH

__all__ = ["HEADER_ID", "HEADER_METHOD", "HEADER_NAME", "HEADER_SHARED_KEY", "NotFound",
           "Session", "SessionAuth", "SessionError", "SessionHeaders", "SessionSSH",
           "SessionSecrets", "Unsupported", "parse_headers", "send_directory",
           "send_tar", "sync_directory"]
