"""Exec, Attach and PortForward answer with a URL of the streaming server
(cri/streaming, served to kubelet's clients over SPDY or websockets), once the request
is checked."""

from __future__ import annotations

from typing import Protocol

from ..engine.containers.records import Container
from ..errors import InvalidParameter
from ..protos.cri import api_pb2 as pb


class StreamingURLs(Protocol):
    def exec(self, container_id: str, cmd: list[str], tty: bool, stdin: bool, stdout: bool,
             stderr: bool) -> str: ...

    def attach(self, container_id: str, tty: bool, stdin: bool, stdout: bool,
               stderr: bool) -> str: ...

    def port_forward(self, pod_sandbox_id: str, ports: list[int]) -> str: ...


class Streams:
    def __init__(self, server: StreamingURLs) -> None:
        self.server = server

    def exec(self, c: Container, r: pb.ExecRequest) -> str:
        if not r.cmd:
            raise InvalidParameter("exec command is required")
        if not (r.stdin or r.stdout or r.stderr):
            raise InvalidParameter("one of stdin, stdout, or stderr must be set")
        if r.tty and r.stderr:
            raise InvalidParameter("tty and stderr cannot both be true")
        if c.state.status != "running":
            raise InvalidParameter(f"container {c.id} is not running")
        return self.server.exec(c.id, list(r.cmd), r.tty, r.stdin, r.stdout, r.stderr)

    def attach(self, c: Container, r: pb.AttachRequest) -> str:
        if not (r.stdin or r.stdout or r.stderr):
            raise InvalidParameter("one of stdin, stdout, or stderr must be set")
        if c.state.status != "running":
            raise InvalidParameter(f"container {c.id} is not running")
        return self.server.attach(c.id, r.tty, r.stdin, r.stdout, r.stderr)

    def port_forward(self, sandbox: Container, ports: list[int]) -> str:
        if any(not 0 < p < 65536 for p in ports):
            raise InvalidParameter(f"invalid port in {ports}")
        return self.server.port_forward(sandbox.id, ports)
