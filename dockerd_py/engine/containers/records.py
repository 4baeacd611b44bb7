"""Container records: the state dockerd keeps per container, and their rows; exec sessions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..runtime.process import Process

ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class State:
    status: str = "created"      # created|running|paused|restarting|removing|exited|dead
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    health: dict[str, Any] | None = None
    restart_count: int = 0
    manually_stopped: bool = False   # unless-stopped must not restart these

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")

    def to_api(self) -> dict[str, Any]:
        out = {
            "Status": self.status,
            "Running": self.status in ("running", "paused"),
            "Paused": self.status == "paused",
            "Restarting": self.status == "restarting",
            "OOMKilled": self.oom_killed,
            "Dead": self.status == "dead",
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
        }
        if self.health is not None:
            out["Health"] = self.health
        return out


@dataclass(frozen=True)
class Container:
    id: str
    name: str                    # without the leading "/"
    image: str                   # as the client named it
    image_id: str
    created: str
    seq: int
    config: dict[str, Any]
    host_config: dict[str, Any]
    networking: dict[str, Any] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    state: State = field(default_factory=State)

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def with_state(self, **changes: Any) -> Container:
        return replace(self, state=replace(self.state, **changes))


@dataclass
class ExecSession:
    id: str
    container_id: str
    config: dict[str, Any]
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    process: Process | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def to_api(self) -> dict[str, Any]:
        cmd = list(self.config.get("Cmd") or [])
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
            "ProcessConfig": {"tty": self.tty, "entrypoint": cmd[0] if cmd else "",
                              "arguments": cmd[1:],
                              "privileged": bool(self.config.get("Privileged")),
                              "user": self.config.get("User") or ""},
            "OpenStdin": bool(self.config.get("AttachStdin")),
            "OpenStderr": bool(self.config.get("AttachStderr")),
            "OpenStdout": bool(self.config.get("AttachStdout")),
            "CanRemove": False, "ContainerID": self.container_id,
            "DetachKeys": self.config.get("DetachKeys") or "", "Pid": self.pid,
        }


def _row(c: Container) -> tuple[Any, ...]:
    return (c.id, c.name, c.image, c.image_id, c.created, c.seq, json.dumps(c.config),
            json.dumps(c.host_config), json.dumps(c.networking), json.dumps(c.mounts),
            json.dumps(asdict(c.state)))


def save(conn: sqlite3.Connection, c: Container) -> None:
    conn.execute("INSERT OR REPLACE INTO containers(id, name, image, image_id, created, seq, "
                 "config, host_config, networking, mounts, state) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _row(c))


def delete(conn: sqlite3.Connection, cid: str) -> None:
    conn.execute("DELETE FROM containers WHERE id = ?", (cid,))


def load_all(conn: sqlite3.Connection) -> list[Container]:
    out = []
    for r in conn.execute("SELECT * FROM containers ORDER BY seq"):
        out.append(Container(
            id=r["id"], name=r["name"], image=r["image"], image_id=r["image_id"],
            created=r["created"], seq=r["seq"], config=json.loads(r["config"]),
            host_config=json.loads(r["host_config"]), networking=json.loads(r["networking"]),
            mounts=json.loads(r["mounts"]), state=State(**json.loads(r["state"]))))
    return out


def next_seq(conn: sqlite3.Connection) -> int:
    seq: int = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM containers").fetchone()[0]
    return seq
