"""Per-container monitors: conmon processes that outlive the daemon.

conmon (Podman's and CRI-O's monitor) owns a container's stdio, pty, log file and
exit status. It runs `<runtime> create` for us, then lives as a detached process
(double fork, own session) until the container exits, so containers survive a
daemon restart. Starting, killing, pausing and deleting are done by the daemon
through `oci.OCIRuntime`; conmon only monitors. How Podman drives it, and what was
verified on this kind of machine: docs/CONMON-NOTES.md.

Layout under the monitor root (the daemon uses `<exec-root>/rt`; tmpfs, so a
reboot starts clean). Paths stay short: the attach socket is `<dir>/attach`,
and an AF_UNIX path must fit in 108 bytes (`/run/dockerd-py/rt/c/<64 hex>/attach`
is 92).

    exits/<container id>       conmon --exit-dir of every container: the exit code,
                               as decimal text. One inotify watch covers them all.
    c/<container id>/          the bundle: config.json (written by the caller),
                               attach (SOCK_SEQPACKET), ctl + winsz (fifos) by conmon,
                               pid (container pid), conmon.pid, monitor.json (ours)
    c/<container id>/persist/  conmon --persist-dir: exit, oom
    x/<exec id>/               one exec session: process.json, attach, ctl, winsz,
                               pid, conmon.pid, monitor.json, persist/{exit,oom}

Lifecycle:
    bundle_dir(cid)            make the directory; the caller writes config.json
    create(cid, runtime, ...)  conmon + `runtime create`  -> Process (pid known)
    (the caller runs runtime.start; attach first if it wants all the output)
    attach(proc)               AttachStream: output packets, stdin, half-close
    resize(proc, h, w)         pty size through the ctl fifo
    wait(proc)                 ExitStatus, when the exit file appears
    exec(cid, eid, ...)        an exec session with the same machinery
    remove(cid)                runtime delete --force, conmon gone, files gone

After a daemon restart a new Monitor on the same root finds everything again:
`load(cid)` / `processes()` read monitor.json; `exit_status(proc)` reports exits
that happened while the daemon was down (the exit file is written by conmon
whether or not anyone listens).

Exit detection: inotify on exits/ (and on an exec's persist/), through ctypes:
one descriptor and one watch for all containers, woken by conmon's rename of the
exit file, no polling. A pidfd on the conmon process backs it up, so a monitor
that dies without writing an exit file (SIGKILLed) is reported instead of
waited on forever. Without inotify the watcher polls every 50 ms.

conmon is moved into one shared cgroup `<cgroup_parent>/conmon` in the
hierarchies that service managers use to track a unit's processes (cgroup2, and
the v1 `name=systemd` hierarchy): stopping the daemon's service must not kill
the monitors. Resource controllers are left alone. One shared cgroup, never one
per container: nothing to leak. Podman moves conmon before releasing it; we move
the monitor (the grandchild) while the runtime creates the container, because a
cgroup migration costs an RCU grace period (~10 ms measured here) unless another
one happened just before, and runc's own migration of the container's init is
that other one. Only conmon is concerned: the runtime places the container in
its own cgroup (cgroupsPath) in every hierarchy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import dataclasses
import errno
import json
import logging
import os
import shutil
import socket
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ...errors import Conflict, DaemonError, InternalError, NotFound
from .oci import OCIRuntime, runtime_message, translate_error

log = logging.getLogger(__name__)

# Stream numbers as Docker's stdcopy frames them (attach and logs both use them).
STDIN, STDOUT, STDERR = 0, 1, 2
_CONMON_STREAM = {2: STDOUT, 3: STDERR}  # conmon's stdpipe_t on the attach socket
_ATTACH_READ = 8192 + 1                  # conmon: STDIO_BUF_SIZE + the stream byte
_ATTACH_WRITE = 8192                     # conmon reads 32 KiB; SEQPACKET truncates
_SUN_PATH_MAX = 107
LOST_EXIT_CODE = 255                     # monitor died without recording the exit

Kind = Literal["container", "exec"]


@dataclass(frozen=True)
class ExitStatus:
    code: int            # exit status, or 128+signal (Docker's convention)
    finished_at: int     # ns since the epoch (when conmon wrote the exit file)
    oom_killed: bool = False
    error: str = ""      # why there is no real exit code (monitor lost)


@dataclass(frozen=True)
class Process:
    """A monitored process: a container's init or an exec session (monitor.json)."""

    id: str              # container id, or exec id
    container_id: str
    kind: Kind
    dir: str
    pid: int
    conmon_pid: int
    terminal: bool
    stdin: bool
    runtime: dict[str, Any]
    log_path: str | None
    created_at: int      # ns since the epoch

    @property
    def attach_path(self) -> str:
        return os.path.join(self.dir, "attach")

    @property
    def ctl_path(self) -> str:
        return os.path.join(self.dir, "ctl")

    @property
    def persist_dir(self) -> str:
        return os.path.join(self.dir, "persist")

    def oci_runtime(self) -> OCIRuntime:
        return OCIRuntime.from_record(self.runtime)


# --- inotify through libc -------------------------------------------------------------

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_IGNORED = 0x8000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


class Inotify:
    """A non-blocking inotify descriptor: add_watch, then read_events when readable."""

    _libc: Any = None

    def __init__(self) -> None:
        if Inotify._libc is None:
            Inotify._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                                        use_errno=True)
        fd = Inotify._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.fd: int = fd

    def fileno(self) -> int:
        return self.fd

    def add_watch(self, path: str, mask: int) -> int:
        wd = Inotify._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        Inotify._libc.inotify_rm_watch(self.fd, wd)

    def read_events(self) -> list[tuple[int, int, str]]:
        """(wd, mask, name) for every queued event; [] when none."""
        events: list[tuple[int, int, str]] = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            off = 0
            while off < len(buf):
                wd, mask, _cookie, length = _EVENT.unpack_from(buf, off)
                raw = buf[off + _EVENT.size: off + _EVENT.size + length]
                events.append((wd, mask, os.fsdecode(raw.rstrip(b"\0"))))
                off += _EVENT.size + length

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# --- small file helpers ---------------------------------------------------------------

def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _cmdline(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def _conmon_alive(proc: Process) -> bool:
    """True if conmon_pid is still this process's conmon (not a reused pid)."""
    argv = _cmdline(proc.conmon_pid)
    if not argv or not os.path.basename(argv[0]).startswith(b"conmon"):
        return False
    if proc.id.encode() not in argv or proc.dir.encode() not in argv:
        return False
    return not _is_zombie(proc.conmon_pid)


def _conmon_cgroup_dirs(parent: str) -> list[str]:
    """`<mount>/<parent>/conmon` in the cgroup2 tree and the v1 name=systemd hierarchy."""
    dirs = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, options = tail[0], tail[2].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options):
            dirs.append(os.path.join(fields[4], parent.strip("/"), "conmon"))
    return dirs


# --- the attach socket ----------------------------------------------------------------

class AttachStream:
    """A client of conmon's attach socket.

    recv() gives (STDOUT|STDERR, bytes) per packet — conmon sends one packet per
    read from the container, so packets are not lines — and None at the end (the
    container exited, or remove). send() writes stdin; close_stdin() half-closes,
    which closes the container's stdin when conmon runs without
    --leave-stdin-open (Docker's StdinOnce). With a TTY all output is STDOUT.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def connect(cls, path: str) -> AttachStream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        dirfd = -1
        try:
            target = path
            if len(os.fsencode(path)) > _SUN_PATH_MAX:  # conmon binds the same way
                dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
                target = f"/proc/self/fd/{dirfd}/{os.path.basename(path)}"
            await asyncio.get_running_loop().sock_connect(sock, target)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            sock.close()
            raise Conflict(f"container is not running (attach socket: {e.strerror})") from e
        except BaseException:
            sock.close()
            raise
        finally:
            if dirfd >= 0:
                os.close(dirfd)
        return cls(sock)

    async def recv(self) -> tuple[int, bytes] | None:
        while True:
            try:
                packet = await self._loop.sock_recv(self._sock, _ATTACH_READ)
            except (ConnectionResetError, OSError) as e:
                if isinstance(e, ConnectionResetError) or e.errno in (errno.EBADF, errno.ENOTCONN):
                    return None
                raise
            if not packet:
                return None
            stream = _CONMON_STREAM.get(packet[0])
            if stream is not None and len(packet) > 1:
                return stream, packet[1:]

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        while (item := await self.recv()) is not None:
            yield item

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for off in range(0, len(view), _ATTACH_WRITE):
                await self._loop.sock_sendall(self._sock, view[off:off + _ATTACH_WRITE])
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Conflict("container is not running (its stdin is closed)") from e

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._sock.close()

    async def __aenter__(self) -> AttachStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


# --- conmon spawning ------------------------------------------------------------------

class _Pipes:
    """The socketpairs conmon talks to its parent through (CONMON-NOTES §2)."""

    def __init__(self, attach: bool) -> None:
        pair = socket.socketpair
        kind = socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC
        self.sync, self._sync_child = pair(socket.AF_UNIX, kind)
        self.start, self._start_child = pair(socket.AF_UNIX, kind)
        self.attach: socket.socket | None = None
        self._attach_child: socket.socket | None = None
        if attach:
            self.attach, self._attach_child = pair(socket.AF_UNIX, kind)
        for s in self.parent_ends():
            s.setblocking(False)

    def parent_ends(self) -> list[socket.socket]:
        return [s for s in (self.sync, self.start, self.attach) if s is not None]

    def child_ends(self) -> list[socket.socket]:
        return [s for s in (self._sync_child, self._start_child, self._attach_child)
                if s is not None]

    def env(self) -> dict[str, str]:
        env = {"_OCI_SYNCPIPE": str(self._sync_child.fileno()),
               "_OCI_STARTPIPE": str(self._start_child.fileno())}
        if self._attach_child is not None:
            env["_OCI_ATTACHPIPE"] = str(self._attach_child.fileno())
        return env

    def close_child_ends(self) -> None:
        for s in self.child_ends():
            s.close()

    def close(self) -> None:
        self.close_child_ends()
        for s in self.parent_ends():
            s.close()


async def _read_message(sock: socket.socket, what: str, timeout: float) -> dict[str, Any]:
    """One `{"data": N[, "message": ...]}` packet; InternalError on EOF or timeout."""
    loop = asyncio.get_running_loop()
    try:
        packet = await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout)
    except TimeoutError:
        raise InternalError(f"conmon: no {what} message within {timeout:.0f}s") from None
    if not packet:
        raise InternalError(f"conmon exited before sending its {what} message")
    try:
        message: dict[str, Any] = json.loads(packet)
        int(message["data"])
    except (ValueError, KeyError, TypeError):
        raise InternalError(f"conmon: bad {what} message {packet[:200]!r}") from None
    return message


# --- the monitor ----------------------------------------------------------------------

class Monitor:
    """All conmon monitors of one daemon, rooted at one directory (see module doc)."""

    def __init__(self, root: str, *, conmon: str = "conmon",
                 cgroup_parent: str | None = "dockerd-py", log_level: str = "error",
                 sync_logs: bool = False, timeout: float = 120.0) -> None:
        self.root = os.path.abspath(root)
        self.conmon = shutil.which(conmon) or conmon
        self.cgroup_parent = cgroup_parent
        self.log_level = log_level
        self.sync_logs = sync_logs
        self.timeout = timeout
        self.exits_dir = os.path.join(self.root, "exits")
        self._inotify: Inotify | None = None
        self._wds: dict[str, int] = {}           # watched dir -> wd
        self._dirs: dict[int, str] = {}          # wd -> watched dir
        self._waiters: dict[str, tuple[Process, asyncio.Future[ExitStatus]]] = {}
        self._pidfds: dict[str, int] = {}        # exit file -> pidfd of its conmon
        self._poller: asyncio.Task[None] | None = None
        for sub in ("exits", "c", "x"):
            os.makedirs(os.path.join(self.root, sub), mode=0o700, exist_ok=True)

    # -- paths

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.root, "c", cid)

    def exec_dir(self, exec_id: str) -> str:
        return os.path.join(self.root, "x", exec_id)

    def bundle_dir(self, cid: str) -> str:
        """The container's bundle directory (created); the caller writes config.json."""
        path = self.container_dir(cid)
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    def exit_file(self, proc: Process) -> str:
        if proc.kind == "container":
            return os.path.join(self.exits_dir, proc.id)
        return os.path.join(proc.persist_dir, "exit")

    # -- start/stop of the watcher

    async def start(self) -> None:
        """Begins exit detection. Exits that happened before are read by exit_status()."""
        loop = asyncio.get_running_loop()
        try:
            self._inotify = Inotify()
        except OSError as e:
            log.warning("inotify unavailable (%s); polling exit files", e)
            self._poller = loop.create_task(self._poll())
            return
        loop.add_reader(self._inotify.fd, self._on_inotify)
        self._watch_dir(self.exits_dir)

    async def close(self) -> None:
        """Stops watching; monitors and containers keep running (live restore)."""
        loop = asyncio.get_running_loop()
        if self._inotify is not None:
            loop.remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        for path in list(self._pidfds):
            self._drop_pidfd(path)
        for _, fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
        self._wds.clear()
        self._dirs.clear()

    def remove_cgroup(self) -> None:
        """Removes the shared conmon cgroup if no monitor is left in it (best effort)."""
        if not self.cgroup_parent:
            return
        for path in _conmon_cgroup_dirs(self.cgroup_parent):
            with contextlib.suppress(OSError):
                os.rmdir(path)

    # -- creating a container

    async def create(self, cid: str, runtime: OCIRuntime, *, terminal: bool = False,
                     stdin: bool = False, stdin_once: bool = True,
                     log_path: str | None = None, name: str | None = None) -> Process:
        """conmon + `<runtime> create` for the bundle in bundle_dir(cid).

        Returns once the container exists (state "created", pid known); the caller
        starts it with runtime.start(cid), attaching first if it wants all output.
        stdin: keep a pipe to the container's stdin (Docker OpenStdin); stdin_once:
        the first attach client's half-close closes it (StdinOnce). log_path: the
        k8s-file log (logs.log_path(dir)), appended to; None for no log. conmon's
        own --log-size-max is not used: it truncates, and counts across our
        rotations (logs.LogRotator rotates instead).

        On failure everything made here is gone (runtime state, monitor files, the
        bundle directory) and the runtime's message is raised as NotFound,
        Conflict or InternalError (oci.start_failure_exit_code classifies it).
        """
        cdir = self.container_dir(cid)
        if not os.path.exists(os.path.join(cdir, "config.json")):
            raise InternalError(f"no bundle for container {cid}: {cdir}/config.json missing")
        if log_path is not None:
            os.makedirs(os.path.dirname(log_path), mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.exits_dir, cid))
        _rmtree(os.path.join(cdir, "persist"))
        os.makedirs(os.path.join(cdir, "persist"), mode=0o700)
        # Recorded before conmon runs, so that remove() knows the runtime even if
        # the daemon dies half-way; rewritten with the pids once they are known.
        self._record(cid, cid, "container", cdir, 0, terminal, stdin, runtime, log_path)
        argv = self._common_args(cid, cid, runtime, cdir)
        argv += ["--exit-dir", self.exits_dir]
        argv += ["-l", f"k8s-file:{log_path}" if log_path else "none"]
        if name:
            argv += ["-n", name]
        argv += self._stdio_args(terminal, stdin, stdin_once)
        pipes = _Pipes(attach=False)
        moving = None
        try:
            moving = await self._spawn(argv, cdir, pipes)
            msg = await _read_message(pipes.sync, "create", self.timeout)
        except BaseException:
            pipes.close()
            await self._cleanup_failed(cid, runtime, cdir)
            raise
        finally:
            if moving is not None:
                await moving
        pipes.close()
        pid = int(msg["data"])
        if pid <= 0:
            await self._cleanup_failed(cid, runtime, cdir)
            message = runtime_message(msg.get("message", "")) or "runtime create failed"
            raise translate_error("create", cid, message)
        proc = self._record(cid, cid, "container", cdir, pid, terminal, stdin, runtime, log_path)
        return proc

    async def _cleanup_failed(self, cid: str, runtime: OCIRuntime, cdir: str) -> None:
        with contextlib.suppress(DaemonError):
            await runtime.delete(cid, force=True)
        self._kill_conmon_of(cdir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.exits_dir, cid))
        _rmtree(cdir)

    def _common_args(self, cid: str, cuuid: str, runtime: OCIRuntime, d: str) -> list[str]:
        argv = [self.conmon, "--api-version", "1", "-c", cid, "-u", cuuid,
                "-r", runtime.path, "-b", d, "-p", os.path.join(d, "pid"),
                "--persist-dir", os.path.join(d, "persist"), "--full-attach",
                "--conmon-pidfile", os.path.join(d, "conmon.pid"),
                "--log-level", self.log_level, "--syslog"]
        for arg in runtime.global_args():
            argv += ["--runtime-arg", arg]
        if not self.sync_logs:
            argv.append("--no-sync-log")
        return argv

    @staticmethod
    def _stdio_args(terminal: bool, stdin: bool, stdin_once: bool) -> list[str]:
        argv = []
        if terminal:
            argv.append("-t")
        if stdin:
            argv.append("-i")
            if not stdin_once:
                argv.append("--leave-stdin-open")
        return argv

    async def _spawn(self, argv: list[str], cwd: str, pipes: _Pipes
                     ) -> asyncio.Future[None] | None:
        """Runs conmon and lets it go; returns when the first conmon process has
        exited (the monitor is then a detached grandchild), with the move of that
        monitor into its cgroup under way (await it)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")}
        env.update(pipes.env())
        env["TZ"] = "UTC"  # k8s-file timestamps are local time: make them UTC
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                pass_fds=[s.fileno() for s in pipes.child_ends()],
                start_new_session=True)
        except OSError as e:
            raise InternalError(f"cannot run conmon ({self.conmon}): {e}") from e
        pipes.close_child_ends()
        try:
            loop = asyncio.get_running_loop()
            await loop.sock_sendall(pipes.start, b"\0")
            assert proc.stderr is not None
            err = await asyncio.wait_for(proc.stderr.read(), self.timeout)
            code = await asyncio.wait_for(proc.wait(), self.timeout)
        except BaseException:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            raise
        if code != 0:
            text = err.decode(errors="replace").strip() or f"exit status {code}"
            raise InternalError(f"conmon failed: {text}")
        # The move costs an RCU grace period (~10 ms here) when no other migration
        # happened just before; done while the runtime creates the container (which
        # migrates its init too), it costs nothing on the critical path. Only the
        # monitor itself is concerned: the runtime puts the container in its own
        # cgroup in every hierarchy.
        monitor_pid = _read_int(os.path.join(cwd, "conmon.pid"))
        if not monitor_pid or not self.cgroup_parent:
            return None
        return asyncio.ensure_future(asyncio.to_thread(self._place_in_cgroup, monitor_pid))

    def _place_in_cgroup(self, pid: int) -> None:
        if not self.cgroup_parent:
            return
        for path in _conmon_cgroup_dirs(self.cgroup_parent):
            try:
                os.makedirs(path, exist_ok=True)
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError as e:
                log.warning("cannot move conmon %d into %s: %s", pid, path, e)

    def _record(self, pid_id: str, cid: str, kind: Kind, d: str, pid: int, terminal: bool,
                stdin: bool, runtime: OCIRuntime, log_path: str | None) -> Process:
        conmon_pid = _read_int(os.path.join(d, "conmon.pid")) or 0
        proc = Process(id=pid_id, container_id=cid, kind=kind, dir=d, pid=pid,
                       conmon_pid=conmon_pid, terminal=terminal, stdin=stdin,
                       runtime=runtime.to_record(), log_path=log_path,
                       created_at=time.time_ns())
        _write_atomic(os.path.join(d, "monitor.json"), json.dumps(asdict(proc)).encode())
        return proc

    # -- exec sessions

    async def exec(self, cid: str, exec_id: str, process: dict[str, Any],
                   runtime: OCIRuntime, *, terminal: bool = False, stdin: bool = False,
                   stdin_once: bool = True, attach: bool = True
                   ) -> tuple[Process, AttachStream | None]:
        """Runs `process` (an OCI process object) in container cid, monitored by conmon.

        process["terminal"] must equal terminal; process["consoleSize"] sets the
        first pty size (later: resize()). With attach=True the returned stream is
        connected before the runtime may exec (conmon's two-step start), so no
        output is lost; attach=False is `docker exec -d`. Returns once the process
        runs (its host pid known); wait() gives its exit code, remove_exec() (or
        remove() of the container) its files. Output is not logged, as in Docker.
        """
        if not os.path.isdir(self.container_dir(cid)):
            raise NotFound(f"No such container: {cid}")
        xdir = self.exec_dir(exec_id)
        try:
            os.makedirs(xdir, mode=0o700)
        except FileExistsError:
            raise Conflict(f"exec session {exec_id} already exists") from None
        os.makedirs(os.path.join(xdir, "persist"), mode=0o700)
        spec = os.path.join(xdir, "process.json")
        _write_atomic(spec, json.dumps(process).encode())
        self._record(exec_id, cid, "exec", xdir, 0, terminal, stdin, runtime, None)
        argv = self._common_args(cid, exec_id, runtime, xdir)
        argv += ["-l", "none"]
        argv += self._stdio_args(terminal, stdin, stdin_once)
        argv += ["-e", "--exec-process-spec", spec]
        if attach:
            argv.append("--exec-attach")
        pipes = _Pipes(attach=attach)
        stream: AttachStream | None = None
        moving = None
        try:
            moving = await self._spawn(argv, xdir, pipes)
            if pipes.attach is not None:
                await _read_message(pipes.attach, "attach", self.timeout)
                stream = await AttachStream.connect(os.path.join(xdir, "attach"))
                await asyncio.get_running_loop().sock_sendall(pipes.start, b"\0")
            msg = await _read_message(pipes.sync, "exec", self.timeout)
        except BaseException:
            pipes.close()
            if stream is not None:
                stream.close()
            self._kill_conmon_of(xdir)
            _rmtree(xdir)
            raise
        finally:
            if moving is not None:
                await moving
        pid = int(msg["data"])
        if pid <= 0:
            pipes.close()
            if stream is not None:
                stream.close()
            self._kill_conmon_of(xdir)
            _rmtree(xdir)
            message = runtime_message(msg.get("message", "")) or "runtime exec failed"
            raise translate_error("exec in", cid, message)
        # conmon writes the exit code on the sync pipe too; we read the exit file
        # instead (it survives daemon restarts), so that end can go.
        pipes.close()
        proc = self._record(exec_id, cid, "exec", xdir, pid, terminal, stdin, runtime, None)
        return proc, stream

    def _kill_conmon_of(self, d: str) -> None:
        pid = _read_int(os.path.join(d, "conmon.pid"))
        if pid and d.encode() in _cmdline(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, 9)

    # -- finding processes again (daemon restart)

    def _load(self, d: str, what: str) -> Process:
        try:
            with open(os.path.join(d, "monitor.json"), "rb") as f:
                proc = Process(**json.loads(f.read()))
            if not proc.conmon_pid:  # recorded before conmon ran: it may have since
                conmon_pid = _read_int(os.path.join(d, "conmon.pid")) or 0
                proc = dataclasses.replace(proc, conmon_pid=conmon_pid)
            return proc
        except FileNotFoundError:
            raise NotFound(f"No such {what}: {os.path.basename(d)}") from None
        except (ValueError, TypeError) as e:
            raise InternalError(f"unreadable monitor state in {d}: {e}") from e

    def load(self, cid: str) -> Process:
        return self._load(self.container_dir(cid), "container")

    def load_exec(self, exec_id: str) -> Process:
        return self._load(self.exec_dir(exec_id), "exec instance")

    def _exec_sessions(self) -> list[Process]:
        found = []
        base = os.path.join(self.root, "x")
        for name in os.listdir(base):
            with contextlib.suppress(DaemonError):
                found.append(self._load(os.path.join(base, name), "exec instance"))
        return found

    def processes(self) -> list[Process]:
        """Every monitored container and exec session with persisted state."""
        found = []
        for sub in ("c", "x"):
            base = os.path.join(self.root, sub)
            for name in sorted(os.listdir(base)):
                with contextlib.suppress(DaemonError):
                    found.append(self._load(os.path.join(base, name), sub))
        return found

    # -- status, exit

    def alive(self, proc: Process) -> bool:
        """Is the monitor of proc still running?"""
        return _conmon_alive(proc)

    def exit_status(self, proc: Process) -> ExitStatus | None:
        """The exit, if it happened (also while the daemon was down); None if running.

        A monitor that is gone without an exit file reports LOST_EXIT_CODE."""
        status = self._read_exit(proc)
        if status is None and not _conmon_alive(proc):
            status = self._read_exit(proc) or ExitStatus(
                LOST_EXIT_CODE, time.time_ns(), False,
                "monitor exited without recording the exit status")
        return status

    def _read_exit(self, proc: Process) -> ExitStatus | None:
        path = self.exit_file(proc)
        try:
            with open(path, "rb") as f:
                text = f.read().strip()
                finished = os.fstat(f.fileno()).st_mtime_ns
        except FileNotFoundError:
            return None
        try:
            code = int(text)
        except ValueError:
            return ExitStatus(LOST_EXIT_CODE, finished, False, f"bad exit file {text[:40]!r}")
        oom = os.path.exists(os.path.join(proc.persist_dir, "oom"))
        return ExitStatus(code if code >= 0 else LOST_EXIT_CODE, finished, oom,
                          "" if code >= 0 else "monitor reported no exit code")

    async def wait(self, proc: Process) -> ExitStatus:
        """Returns when proc has exited (at once if it already has)."""
        path = self.exit_file(proc)
        entry = self._waiters.get(path)
        if entry is None:
            fut: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
            entry = self._waiters[path] = (proc, fut)
            if self._inotify is not None:
                self._watch_dir(os.path.dirname(path))
            self._watch_pid(path, proc)
            self._check(path)  # it may have exited before the watch was in place
        return await asyncio.shield(entry[1])

    def _check(self, path: str) -> None:
        entry = self._waiters.get(path)
        if entry is None:
            return
        proc, fut = entry
        status = self.exit_status(proc)
        if status is None:
            return
        del self._waiters[path]
        self._drop_pidfd(path)
        if proc.kind == "exec":
            self._unwatch_dir(os.path.dirname(path))
        if not fut.done():
            fut.set_result(status)

    def _watch_dir(self, d: str) -> None:
        if self._inotify is None or d in self._wds:
            return
        try:
            wd = self._inotify.add_watch(d, IN_MOVED_TO | IN_CLOSE_WRITE)
        except OSError as e:
            log.warning("cannot watch %s: %s", d, e)
            return
        self._wds[d] = wd
        self._dirs[wd] = d

    def _unwatch_dir(self, d: str) -> None:
        wd = self._wds.pop(d, None)
        if wd is not None and self._inotify is not None:
            self._dirs.pop(wd, None)
            self._inotify.rm_watch(wd)

    def _on_inotify(self) -> None:
        assert self._inotify is not None
        for wd, mask, name in self._inotify.read_events():
            if mask & IN_IGNORED:
                d = self._dirs.pop(wd, None)
                if d is not None:
                    self._wds.pop(d, None)
                continue
            d = self._dirs.get(wd)
            if d is not None and name:
                self._check(os.path.join(d, name))

    def _watch_pid(self, path: str, proc: Process) -> None:
        if not hasattr(os, "pidfd_open") or not proc.conmon_pid:
            return
        try:
            fd = os.pidfd_open(proc.conmon_pid)
        except OSError:
            return  # already gone: _check() right after sees it
        if not _conmon_alive(proc):
            os.close(fd)
            return
        self._pidfds[path] = fd
        asyncio.get_running_loop().add_reader(fd, self._check, path)

    def _drop_pidfd(self, path: str) -> None:
        fd = self._pidfds.pop(path, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            for path in list(self._waiters):
                self._check(path)

    # -- talking to a running monitor

    async def attach(self, proc: Process) -> AttachStream:
        return await AttachStream.connect(proc.attach_path)

    def _ctl(self, proc: Process, line: str) -> None:
        if self._read_exit(proc) is not None:
            raise Conflict(f"container {proc.container_id} is not running")
        try:
            fd = os.open(proc.ctl_path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.ENOENT):
                raise Conflict(f"container {proc.container_id} is not running") from e
            raise InternalError(f"cannot open {proc.ctl_path}: {e}") from e
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def resize(self, proc: Process, height: int, width: int) -> None:
        """New pty size (TTY mode); conmon applies it once it holds the pty."""
        self._ctl(proc, f"1 {int(height)} {int(width)}\n")

    def reopen_log(self, proc: Process) -> None:
        """conmon starts a fresh, empty log file at log_path (after a rotation's rename)."""
        self._ctl(proc, "2 0 0\n")

    # -- removal

    async def remove(self, cid: str) -> None:
        """Deletes the container from the runtime (killing it if running), ends its
        monitor and exec sessions, and removes every file of it here."""
        try:
            proc: Process | None = self.load(cid)
        except DaemonError:
            proc = None
        if proc is not None:
            await proc.oci_runtime().delete(cid, force=True)
        for xproc in self._exec_sessions():  # exec sessions only: mass removals stay O(N)
            if xproc.container_id == cid:
                await self.remove_exec(xproc.id)
        if proc is not None:
            await self._end_conmon(proc)
            self._forget(proc)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.exits_dir, cid))
        await asyncio.to_thread(_rmtree, self.container_dir(cid))

    async def remove_exec(self, exec_id: str) -> None:
        """Ends an exec session (SIGKILL to its process if still running) and its files."""
        try:
            proc = self.load_exec(exec_id)
        except NotFound:
            await asyncio.to_thread(_rmtree, self.exec_dir(exec_id))
            return
        if _conmon_alive(proc) and proc.pid > 0:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, 9)
        await self._end_conmon(proc)
        self._forget(proc)
        await asyncio.to_thread(_rmtree, proc.dir)

    def _forget(self, proc: Process) -> None:
        path = self.exit_file(proc)
        entry = self._waiters.pop(path, None)
        self._drop_pidfd(path)
        if proc.kind == "exec":
            self._unwatch_dir(os.path.dirname(path))
        if entry is not None and not entry[1].done():
            entry[1].set_result(self.exit_status(proc) or ExitStatus(
                LOST_EXIT_CODE, time.time_ns(), False, "removed"))

    async def _end_conmon(self, proc: Process, grace: float = 2.0) -> None:
        """Waits for conmon to finish (it does once its process is gone), then SIGKILL."""
        if not _conmon_alive(proc):
            return
        try:
            fd = os.pidfd_open(proc.conmon_pid)
        except (OSError, AttributeError):
            fd = -1
        try:
            if fd >= 0 and _conmon_alive(proc):
                loop = asyncio.get_running_loop()
                gone: asyncio.Future[None] = loop.create_future()

                def exited() -> None:
                    if not gone.done():
                        gone.set_result(None)

                loop.add_reader(fd, exited)
                try:
                    await asyncio.wait_for(gone, grace)
                except TimeoutError:
                    pass
                finally:
                    loop.remove_reader(fd)
            if _conmon_alive(proc):
                with contextlib.suppress(OSError):
                    os.kill(proc.conmon_pid, 9)
        finally:
            if fd >= 0:
                os.close(fd)
