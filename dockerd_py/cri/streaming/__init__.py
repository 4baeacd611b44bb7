"""The CRI streaming server (exec, attach, port-forward for kubelet's clients)."""

from .contract import InputStream, OutputStream, StreamingRuntime, TerminalSize
from .server import StreamingServer

__all__ = ["InputStream", "OutputStream", "StreamingRuntime", "StreamingServer",
           "TerminalSize"]
