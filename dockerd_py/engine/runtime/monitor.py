"""Per-container monitors: conmon processes that outlive the daemon.

conmon (Podman's and CRI-O's monitor) owns a container's stdio, pty, log file and
exit status. It runs `<runtime> create` for us, then lives as a detached process
(double fork, own session) until the container exits, so containers survive a
daemon restart. Starting, killing, pausing and deleting are done by the daemon
through `oci.OCIRuntime`; conmon only monitors. How Podman drives it, and what was
verified on this kind of machine: docs/CONMON-NOTES.md.

This module speaks conmon's protocol (its command line, the sync/start/attach
pipes, the ctl fifo) and keeps the monitor's files. The plumbing is beside it:
exits.py (exit files, inotify, pidfds), attach.py (the attach socket),
cgroups.py (the monitors' cgroup), probes.py (is a pid still our conmon),
process.py (the records handed out).

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
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import time
from typing import Any

from ...errors import Conflict, DaemonError, InternalError, NotFound
from ..modes import CHILD_UMASK
from . import cgroups, exits
from .attach import AttachStream
from .conmonpipes import Pipes, read_message
from .oci import OCIRuntime, runtime_message, translate_error
from .probes import cmdline, conmon_alive
from .process import ExitStatus, Kind, Process, conmon_pid_file, read_int, write_atomic


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


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
        self._exits = exits.ExitWatcher()
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
        self._exits.start(self.exits_dir)

    async def close(self) -> None:
        """Stops watching; monitors and containers keep running (live restore)."""
        await self._exits.close()

    def remove_cgroup(self) -> None:
        """Removes the shared conmon cgroup if no monitor is left in it (best effort)."""
        if self.cgroup_parent:
            cgroups.remove_cgroup(self.cgroup_parent)

    # -- creating a container

    async def create(self, cid: str, runtime: OCIRuntime, *, terminal: bool = False,
                     stdin: bool = False, stdin_once: bool = True,
                     log_path: str | None = None, name: str | None = None,
                     journald_tag: str | None = None) -> Process:
        """conmon + `<runtime> create` for the bundle in bundle_dir(cid).

        Returns once the container exists (state "created", pid known); the caller
        starts it with runtime.start(cid), attaching first if it wants all output.
        stdin: keep a pipe to the container's stdin (Docker OpenStdin); stdin_once:
        the first attach client's half-close closes it (StdinOnce). log_path: the
        k8s-file log (logs.log_path(dir)), appended to; None for no log. conmon's
        own --log-size-max is not used: it truncates, and counts across our
        rotations (logs.LogRotator rotates instead). journald_tag: conmon also
        writes each line to the host's journal, with this CONTAINER_TAG and
        SYSLOG_IDENTIFIER (name: CONTAINER_NAME). Neither: nothing is recorded.

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
        argv += self._log_args(log_path, journald_tag)
        if name:
            argv += ["-n", name]
        argv += self._stdio_args(terminal, stdin, stdin_once)
        pipes = Pipes(attach=False)
        moving = None
        try:
            moving = await self._spawn(argv, cdir, pipes)
            msg = await read_message(pipes.sync, "create", self.timeout)
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
                "--conmon-pidfile", conmon_pid_file(d),
                "--log-level", self.log_level, "--syslog"]
        for arg in runtime.global_args():
            argv += ["--runtime-arg", arg]
        if not self.sync_logs:
            argv.append("--no-sync-log")
        return argv

    @staticmethod
    def _log_args(log_path: str | None, journald_tag: str | None) -> list[str]:
        argv = []
        if log_path:
            argv += ["-l", f"k8s-file:{log_path}"]
        if journald_tag is not None:
            argv += ["-l", "journald", f"--log-tag={journald_tag}"]  # "=": a tag may begin with "-"
        return argv or ["-l", "none"]

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

    async def _spawn(self, argv: list[str], cwd: str, pipes: Pipes
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
                start_new_session=True, umask=CHILD_UMASK)
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
        monitor_pid = read_int(conmon_pid_file(cwd))
        if not monitor_pid or not self.cgroup_parent:
            return None
        return asyncio.ensure_future(
            asyncio.to_thread(cgroups.place_in_cgroup, self.cgroup_parent, monitor_pid))

    @staticmethod
    def _record(pid_id: str, cid: str, kind: Kind, d: str, pid: int, terminal: bool,
                stdin: bool, runtime: OCIRuntime, log_path: str | None) -> Process:
        proc = Process(id=pid_id, container_id=cid, kind=kind, dir=d, pid=pid,
                       conmon_pid=read_int(conmon_pid_file(d)) or 0, terminal=terminal,
                       stdin=stdin, runtime=runtime.to_record(), log_path=log_path,
                       created_at=time.time_ns())
        proc.save()
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
        write_atomic(spec, json.dumps(process).encode())
        self._record(exec_id, cid, "exec", xdir, 0, terminal, stdin, runtime, None)
        argv = self._common_args(cid, exec_id, runtime, xdir)
        argv += ["-l", "none"]
        argv += self._stdio_args(terminal, stdin, stdin_once)
        argv += ["-e", "--exec-process-spec", spec]
        if attach:
            argv.append("--exec-attach")
        pipes = Pipes(attach=attach)
        stream: AttachStream | None = None
        moving = None
        try:
            moving = await self._spawn(argv, xdir, pipes)
            if pipes.attach is not None:
                await read_message(pipes.attach, "attach", self.timeout)
                stream = await AttachStream.connect(os.path.join(xdir, "attach"))
                await asyncio.get_running_loop().sock_sendall(pipes.start, b"\0")
            msg = await read_message(pipes.sync, "exec", self.timeout)
        except BaseException:
            self._abandon_exec(xdir, pipes, stream)
            raise
        finally:
            if moving is not None:
                await moving
        pid = int(msg["data"])
        if pid <= 0:
            self._abandon_exec(xdir, pipes, stream)
            message = runtime_message(msg.get("message", "")) or "runtime exec failed"
            raise translate_error("exec in", cid, message)
        # conmon writes the exit code on the sync pipe too; we read the exit file
        # instead (it survives daemon restarts), so that end can go.
        pipes.close()
        proc = self._record(exec_id, cid, "exec", xdir, pid, terminal, stdin, runtime, None)
        return proc, stream

    def _abandon_exec(self, xdir: str, pipes: Pipes, stream: AttachStream | None) -> None:
        pipes.close()
        if stream is not None:
            stream.close()
        self._kill_conmon_of(xdir)
        _rmtree(xdir)

    def _kill_conmon_of(self, d: str) -> None:
        pid = read_int(conmon_pid_file(d))
        if pid and d.encode() in cmdline(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, 9)

    # -- finding processes again (daemon restart)

    def load(self, cid: str) -> Process:
        return Process.load(self.container_dir(cid), "container")

    def load_exec(self, exec_id: str) -> Process:
        return Process.load(self.exec_dir(exec_id), "exec instance")

    def _scan(self, sub: str) -> list[Process]:
        found = []
        base = os.path.join(self.root, sub)
        for name in sorted(os.listdir(base)):
            with contextlib.suppress(DaemonError):
                found.append(Process.load(os.path.join(base, name), sub))
        return found

    def processes(self) -> list[Process]:
        """Every monitored container and exec session with persisted state."""
        return self._scan("c") + self._scan("x")

    # -- status, exit

    def alive(self, proc: Process) -> bool:
        """Is the monitor of proc still running?"""
        return conmon_alive(proc)

    def exit_status(self, proc: Process) -> ExitStatus | None:
        """The exit, if it happened (also while the daemon was down); None if running.

        A monitor that is gone without an exit file reports LOST_EXIT_CODE."""
        return exits.exit_status(proc, self.exit_file(proc))

    async def wait(self, proc: Process) -> ExitStatus:
        """Returns when proc has exited (at once if it already has)."""
        return await self._exits.wait(proc, self.exit_file(proc))

    # -- talking to a running monitor

    async def attach(self, proc: Process) -> AttachStream:
        return await AttachStream.connect(proc.attach_path)

    def _ctl(self, proc: Process, line: str) -> None:
        if exits.read_exit(self.exit_file(proc), proc.persist_dir) is not None:
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
        for xproc in self._scan("x"):  # exec sessions only: mass removals stay O(N)
            if xproc.container_id == cid:
                await self.remove_exec(xproc.id)
        if proc is not None:
            await exits.end_conmon(proc)
            self._exits.forget(proc, self.exit_file(proc))
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
        if conmon_alive(proc) and proc.pid > 0:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, 9)
        await exits.end_conmon(proc)
        self._exits.forget(proc, self.exit_file(proc))
        await asyncio.to_thread(_rmtree, proc.dir)
