"""The process-management layer with real runc/crun and conmon (root only).

Each test gets a Rig: a short temporary directory holding the monitor root, the
runtimes' state roots and the logs, plus a cgroup parent of its own. The rig's
finalizer deletes every runtime container, kills every conmon it started and
removes directories and cgroups, whatever happened in the test. The OCI spec is
`runc spec` adjusted here (args, terminal, rootfs, cgroupsPath), so these tests
do not depend on the spec generator.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
import os
import secrets
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockerd_py.engine.runtime import logs as logs_mod
from dockerd_py.engine.runtime.attach import AttachStream
from dockerd_py.engine.runtime.logs import (
    Assembler,
    LogInfo,
    LogRotator,
    RotationPolicy,
    format_timestamp,
    open_driver,
    parse_timestamp,
    read_logs,
    validate,
)
from dockerd_py.engine.runtime.monitor import Monitor
from dockerd_py.engine.runtime.oci import (
    ForegroundRun,
    OCIRuntime,
    logged_error,
    runtime_message,
    start_failure_exit_code,
    translate_error,
)
from dockerd_py.engine.runtime.process import STDERR, STDOUT, ExitStatus, Process
from dockerd_py.errors import Conflict, InternalError, InvalidParameter, NotFound

REPO = Path(__file__).resolve().parents[2]
CRUN_HYBRID = str(REPO / "contrib" / "crun-hybrid")
CGROUP_ROOT = "/sys/fs/cgroup"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs real containers: needs root")


# --- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rootfs(busybox_tar: Path) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="dpyfs-", dir="/tmp"))
    with tarfile.open(busybox_tar) as tar:
        tar.extractall(tmp / "rootfs", filter="fully_trusted")
    yield tmp / "rootfs"
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def base_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("spec")
    subprocess.run(["runc", "spec"], cwd=d, check=True)
    spec: dict[str, Any] = json.loads((d / "config.json").read_text())
    return spec


def _cgroup_dirs(parent: str) -> list[str]:
    found = []
    for hierarchy in sorted(os.listdir(CGROUP_ROOT)):
        path = os.path.join(CGROUP_ROOT, hierarchy, parent)
        if os.path.isdir(path):
            found.append(path)
    return found


def _rmdir_tree(path: str) -> None:
    """cgroup directories, deepest first (their files cannot be removed)."""
    for sub in sorted((os.path.join(d, n) for d, names, _ in os.walk(path) for n in names),
                      key=len, reverse=True):
        try:
            os.rmdir(sub)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


class Rig:
    def __init__(self, tmp: Path, rootfs: Path, base_spec: dict[str, Any]) -> None:
        self.tmp = tmp
        self.rootfs = rootfs
        self.base_spec = base_spec
        self.mon_root = str(tmp / "rt")
        self.parent = f"dpy-test-{secrets.token_hex(4)}"
        self.runc = OCIRuntime("runc", "runc", root=str(tmp / "runc"))
        self.crun = OCIRuntime("crun", CRUN_HYBRID, root=str(tmp / "crun"))
        self.monitors: list[Monitor] = []

    async def monitor(self) -> Monitor:
        mon = Monitor(self.mon_root, cgroup_parent=self.parent)
        await mon.start()
        self.monitors.append(mon)
        return mon

    def spec(self, cid: str, args: list[str], *, terminal: bool = False,
             pidns: bool = True, console_size: tuple[int, int] | None = None
             ) -> dict[str, Any]:
        spec = copy.deepcopy(self.base_spec)
        spec["process"]["args"] = args
        spec["process"]["terminal"] = terminal
        if console_size:
            height, width = console_size
            spec["process"]["consoleSize"] = {"height": height, "width": width}
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        spec["hostname"] = "rt-test"
        spec["linux"]["cgroupsPath"] = f"/{self.parent}/{cid}"
        if not pidns:
            spec["linux"]["namespaces"] = [
                ns for ns in spec["linux"]["namespaces"] if ns["type"] != "pid"]
        return spec

    def bundle(self, mon: Monitor, args: list[str], **kw: Any) -> str:
        cid = secrets.token_hex(32)
        d = mon.bundle_dir(cid)
        Path(d, "config.json").write_text(json.dumps(self.spec(cid, args, **kw)))
        return cid

    def log_dir(self, cid: str) -> str:
        return str(self.tmp / "logs" / cid[:12])

    def process_spec(self, cid: str, args: list[str], terminal: bool = False) -> dict[str, Any]:
        process: dict[str, Any] = self.spec(cid, args, terminal=terminal)["process"]
        return process

    async def run(self, mon: Monitor, args: list[str], *, runtime: OCIRuntime | None = None,
                  stdin: bool = False, terminal: bool = False, log: bool = True,
                  **kw: Any) -> tuple[Process, AttachStream]:
        """create + attach + start: the order the Docker CLI's `run` needs."""
        runtime = runtime or self.runc
        cid = self.bundle(mon, args, terminal=terminal, **kw)
        log_path = logs_mod.log_path(self.log_dir(cid)) if log else None
        proc = await mon.create(cid, runtime, stdin=stdin, terminal=terminal, log_path=log_path)
        stream = await mon.attach(proc)
        await runtime.start(cid)
        return proc, stream

    def cleanup(self) -> list[str]:
        """Synchronous, so it runs even when the test's event loop is gone."""
        problems = []
        for runtime in (self.runc, self.crun):
            assert runtime.root is not None
            if not os.path.isdir(runtime.root):
                continue
            for cid in os.listdir(runtime.root):
                subprocess.run([runtime.path, "--root", runtime.root, "delete", "--force", cid],
                               capture_output=True, check=False)
                problems.append(f"{runtime.name} state left for {cid[:12]}")
        for sub in ("c", "x"):
            base = os.path.join(self.mon_root, sub)
            for name in os.listdir(base) if os.path.isdir(base) else ():
                pid_file = os.path.join(base, name, "conmon.pid")
                try:
                    pid = int(Path(pid_file).read_text())
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except (OSError, ValueError):
                    continue
                if self.mon_root.encode() in cmdline:
                    os.kill(pid, signal.SIGKILL)
                    problems.append(f"conmon {pid} left running for {name[:12]}")
        for mon in self.monitors:
            mon.remove_cgroup()
        deadline = time.monotonic() + 5
        while (dirs := _cgroup_dirs(self.parent)) and time.monotonic() < deadline:
            for d in dirs:
                _rmdir_tree(d)
            if _cgroup_dirs(self.parent):
                time.sleep(0.05)
        if dirs:
            problems.append(f"cgroups left: {dirs}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems


@pytest.fixture
async def rig(rootfs: Path, base_spec: dict[str, Any]) -> AsyncIterator[Rig]:
    tmp = Path(tempfile.mkdtemp(prefix="dpyrt-", dir="/tmp"))
    r = Rig(tmp, rootfs, base_spec)
    try:
        yield r
    finally:
        for mon in r.monitors:
            await mon.close()
        # A test removes what it made; whatever is left is cleaned up and reported.
        problems = r.cleanup()
        assert not problems, problems


async def collect(stream: AttachStream, timeout: float = 10.0) -> dict[int, bytes]:
    out = {STDOUT: b"", STDERR: b""}

    async def drain() -> None:
        async for sid, data in stream:
            out[sid] += data

    await asyncio.wait_for(drain(), timeout)
    return out


async def read_until(stream: AttachStream, needle: bytes, timeout: float = 10.0) -> bytes:
    seen = b""

    async def drain() -> None:
        nonlocal seen
        while needle not in seen:
            item = await stream.recv()
            if item is None:
                raise AssertionError(f"stream ended before {needle!r}; got {seen!r}")
            seen += item[1]

    await asyncio.wait_for(drain(), timeout)
    return seen


async def all_logs(log_dir: str, **kw: Any) -> list[tuple[int, bytes, int]]:
    return [m async for m in read_logs(log_dir, **kw)]


def conmon_running(mon_root: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if b"conmon" in cmdline.split(b"\0")[0] and mon_root.encode() in cmdline \
                and state != b"Z":
            pids.append(int(pid))
    return pids


async def assert_gone(rig: Rig, mon: Monitor, cid: str, runtime: OCIRuntime) -> None:
    with pytest.raises(NotFound):
        await runtime.state(cid)
    assert not os.path.exists(mon.container_dir(cid))
    assert not os.path.exists(os.path.join(mon.exits_dir, cid))
    assert conmon_running(rig.mon_root) == []
    assert not any(os.path.isdir(os.path.join(d, cid)) for d in _cgroup_dirs(rig.parent))


# --- containers ----------------------------------------------------------------------

async def test_output_exit_code_and_log(rig: Rig) -> None:
    mon = await rig.monitor()
    proc, stream = await rig.run(
        mon, ["sh", "-c",
              "echo out1; echo err1 >&2; printf partial; sleep 0.1; echo rest; exit 3"])
    out = await collect(stream)
    status = await asyncio.wait_for(mon.wait(proc), 10)
    assert out[STDOUT] == b"out1\npartialrest\n"
    assert out[STDERR] == b"err1\n"
    assert status.code == 3 and not status.oom_killed and not status.error
    assert mon.exit_status(proc) == status
    assert abs(status.finished_at - time.time_ns()) < 10e9

    log_dir = rig.log_dir(proc.id)
    messages = await all_logs(log_dir)
    by_stream = [(s, d) for s, d, _ in messages]
    assert (STDOUT, b"out1\n") in by_stream and (STDERR, b"err1\n") in by_stream
    assert (STDOUT, b"partialrest\n") in by_stream  # P + F records joined into one line
    assert [d for s, d, _ in messages if s == STDOUT] == [b"out1\n", b"partialrest\n"]
    assert [d for _, d, _ in await all_logs(log_dir, stdout=False)] == [b"err1\n"]
    assert [d for _, d, _ in await all_logs(log_dir, tail=1)] == [b"partialrest\n"]
    last_ts = messages[-1][2]
    assert [d for _, d, _ in await all_logs(log_dir, since=last_ts)] == [b"partialrest\n"]
    assert all(d != b"partialrest\n" for _, d, _ in await all_logs(log_dir, until=last_ts - 1))
    stamped = await all_logs(log_dir, timestamps=True, stderr=False)
    assert stamped[0][1] == format_timestamp(stamped[0][2]) + b" out1\n"
    assert stamped[0][1][29:31] == b"Z "

    await mon.remove(proc.id)
    await assert_gone(rig, mon, proc.id, rig.runc)


async def test_exit_by_signal(rig: Rig) -> None:
    mon = await rig.monitor()
    # SIGKILL to a container's init (pid 1 in its namespace) -> 137
    proc, stream = await rig.run(mon, ["sleep", "60"])
    await rig.runc.kill(proc.id, "KILL")
    assert (await asyncio.wait_for(mon.wait(proc), 10)).code == 137
    # pid 1 ignores SIGTERM without a handler; outside a pid namespace it dies: 143
    proc2, stream2 = await rig.run(mon, ["sleep", "60"], pidns=False)
    await rig.runc.kill(proc2.id, signal.SIGTERM)
    assert (await asyncio.wait_for(mon.wait(proc2), 10)).code == 143
    for p, s in ((proc, stream), (proc2, stream2)):
        s.close()
        await mon.remove(p.id)
        await assert_gone(rig, mon, p.id, rig.runc)


async def test_stdin_and_half_close(rig: Rig) -> None:
    mon = await rig.monitor()
    proc, stream = await rig.run(mon, ["cat"], stdin=True)
    await stream.send(b"hello\n")
    assert await read_until(stream, b"hello\n") == b"hello\n"
    await stream.send(b"x" * 100_000 + b"\n")  # larger than one attach packet
    stream.close_stdin()
    rest = await collect(stream)
    assert rest[STDOUT] == b"x" * 100_000 + b"\n"
    assert (await asyncio.wait_for(mon.wait(proc), 10)).code == 0
    await mon.remove(proc.id)


async def test_tty_and_resize(rig: Rig) -> None:
    mon = await rig.monitor()
    # HostConfig.ConsoleSize goes into the spec, as runtime/spec.py puts it: the runtime sizes
    # the pty before the process runs (a resize through conmon before start could lose the race).
    cid = rig.bundle(mon, ["sh", "-c", "stty size; read line; stty size; echo err >&2"],
                     terminal=True, console_size=(30, 100))
    proc = await mon.create(cid, rig.runc, terminal=True, stdin=True,
                            log_path=logs_mod.log_path(rig.log_dir(cid)))
    stream = await mon.attach(proc)
    await rig.runc.start(cid)
    assert b"30 100" in await read_until(stream, b"30 100\r\n")
    mon.resize(proc, 40, 120)
    await asyncio.sleep(0.1)
    await stream.send(b"go\n")
    out = await collect(stream)
    assert b"40 120\r\n" in out[STDOUT]
    assert b"err\r\n" in out[STDOUT] and out[STDERR] == b""  # a tty has one stream
    assert (await asyncio.wait_for(mon.wait(proc), 10)).code == 0
    with pytest.raises(Conflict):
        mon.resize(proc, 1, 1)
    await mon.remove(cid)
    await assert_gone(rig, mon, cid, rig.runc)


async def test_kill_pause_resume_update_delete(rig: Rig) -> None:
    mon = await rig.monitor()
    proc, stream = await rig.run(mon, ["sh", "-c", "sleep 60 & sleep 60"])
    state = await rig.runc.state(proc.id)
    assert state["status"] == "running" and state["pid"] == proc.pid
    # the monitor sits in the shared conmon cgroup (name=systemd and cgroup2 trees)
    placement = Path(f"/proc/{proc.conmon_pid}/cgroup").read_text().splitlines()
    tracked = [line for line in placement
               if "name=systemd" in line or line.startswith("0::")]
    assert tracked and all(line.endswith(f"/{rig.parent}/conmon") for line in tracked)
    pids = await rig.runc.ps(proc.id)
    assert proc.pid in pids and len(pids) == 2  # sh execs its last command
    await rig.runc.pause(proc.id)
    assert (await rig.runc.state(proc.id))["status"] == "paused"
    with pytest.raises(Conflict):
        await rig.runc.pause(proc.id)
    await rig.runc.resume(proc.id)
    assert (await rig.runc.state(proc.id))["status"] == "running"
    await rig.runc.update(proc.id, {"pids": {"limit": 42}})
    pids_max = Path(CGROUP_ROOT, "pids", rig.parent, proc.id, "pids.max")
    assert pids_max.read_text().strip() == "42"
    with pytest.raises(InvalidParameter):
        await rig.runc.kill(proc.id, "NOSUCHSIG")
    await rig.runc.kill(proc.id, "KILL", all=True)
    assert (await asyncio.wait_for(mon.wait(proc), 10)).code == 137
    with pytest.raises(Conflict):
        await rig.runc.kill(proc.id, "KILL")
    stream.close()
    await mon.remove(proc.id)
    await assert_gone(rig, mon, proc.id, rig.runc)
    with pytest.raises(NotFound):
        await rig.runc.delete(proc.id, missing_ok=False)
    with pytest.raises(NotFound):
        await rig.runc.kill(proc.id, "KILL")


async def test_remove_running_container(rig: Rig) -> None:
    mon = await rig.monitor()
    proc, stream = await rig.run(mon, ["sleep", "60"])
    waiter = asyncio.ensure_future(mon.wait(proc))
    await mon.remove(proc.id)
    assert (await asyncio.wait_for(waiter, 5)).code == 137
    stream.close()
    await assert_gone(rig, mon, proc.id, rig.runc)


async def test_remove_paused_container(rig: Rig) -> None:
    mon = await rig.monitor()
    proc, stream = await rig.run(mon, ["sleep", "60"])
    await rig.runc.pause(proc.id)
    with pytest.raises(Conflict):  # runc refuses to exec into a frozen container
        await mon.exec(proc.id, secrets.token_hex(32), rig.process_spec(proc.id, ["true"]),
                       rig.runc)
    await mon.remove(proc.id)
    stream.close()
    await assert_gone(rig, mon, proc.id, rig.runc)
    assert os.listdir(os.path.join(rig.mon_root, "x")) == []


async def test_long_monitor_root(rig: Rig) -> None:
    """Attach sockets deeper than sun_path's 108 bytes still work (via /proc/self/fd)."""
    rig.mon_root = str(rig.tmp / ("d" * 60) / "rt")
    mon = await rig.monitor()
    proc, stream = await rig.run(mon, ["sh", "-c", "read x; echo got-$x"], stdin=True)
    assert len(proc.attach_path) > 108
    await stream.send(b"deep\n")
    assert (await collect(stream))[STDOUT] == b"got-deep\n"
    assert (await asyncio.wait_for(mon.wait(proc), 10)).code == 0
    await mon.remove(proc.id)
    await assert_gone(rig, mon, proc.id, rig.runc)


async def test_create_failure_leaves_nothing(rig: Rig) -> None:
    mon = await rig.monitor()
    cid = rig.bundle(mon, ["true"])
    spec = json.loads(Path(mon.container_dir(cid), "config.json").read_text())
    spec["root"]["path"] = "/nonexistent-rootfs"
    Path(mon.container_dir(cid), "config.json").write_text(json.dumps(spec))
    with pytest.raises(InternalError) as info:
        await mon.create(cid, rig.runc, log_path=logs_mod.log_path(rig.log_dir(cid)))
    assert "nonexistent-rootfs" in str(info.value) or "rootfs" in str(info.value)
    assert "level=" not in str(info.value)  # the runtime's message, not its log line
    await assert_gone(rig, mon, cid, rig.runc)

    for runtime in (rig.runc, rig.crun):  # Docker's 127: the command does not exist
        cid = rig.bundle(mon, ["nosuchcmd"])
        with pytest.raises(InternalError) as info:
            await mon.create(cid, runtime)
        assert "nosuchcmd" in str(info.value)
        assert start_failure_exit_code(str(info.value)) == 127
        await assert_gone(rig, mon, cid, runtime)


async def test_oom_killed(rig: Rig) -> None:
    mon = await rig.monitor()
    cid = rig.bundle(mon, ["tail", "/dev/zero"])  # tail buffers a line that never ends
    spec = json.loads(Path(mon.container_dir(cid), "config.json").read_text())
    spec["linux"]["resources"]["memory"] = {"limit": 32 << 20}
    Path(mon.container_dir(cid), "config.json").write_text(json.dumps(spec))
    proc = await mon.create(cid, rig.runc)
    await rig.runc.start(cid)
    status = await asyncio.wait_for(mon.wait(proc), 20)
    assert status.code == 137 and status.oom_killed
    await mon.remove(cid)
    await assert_gone(rig, mon, cid, rig.runc)


# --- exec ----------------------------------------------------------------------------

async def test_exec(rig: Rig) -> None:
    mon = await rig.monitor()
    proc, stream = await rig.run(mon, ["sleep", "60"])
    for i in range(5):  # output written at once by the exec'd process is never lost
        eid = secrets.token_hex(32)
        spec = rig.process_spec(proc.id, ["sh", "-c", f"echo out{i}; echo err{i} >&2; exit 7"])
        xproc, xstream = await mon.exec(proc.id, eid, spec, rig.runc)
        assert xstream is not None and xproc.kind == "exec" and xproc.pid > 0
        out = await collect(xstream)
        assert out == {STDOUT: f"out{i}\n".encode(), STDERR: f"err{i}\n".encode()}
        assert (await asyncio.wait_for(mon.wait(xproc), 10)).code == 7
        await mon.remove_exec(eid)
        assert not os.path.exists(mon.exec_dir(eid))

    # stdin + tty exec
    eid = secrets.token_hex(32)
    spec = rig.process_spec(proc.id, ["sh", "-c", "read x; echo got-$x; tty"], terminal=True)
    spec["consoleSize"] = {"height": 25, "width": 90}
    xproc, xstream = await mon.exec(proc.id, eid, spec, rig.runc, terminal=True, stdin=True)
    assert xstream is not None
    await xstream.send(b"abc\n")
    out = await collect(xstream)
    assert b"got-abc\r\n" in out[STDOUT] and b"/dev/pts/" in out[STDOUT]
    assert (await asyncio.wait_for(mon.wait(xproc), 10)).code == 0

    # detached exec (docker exec -d), kept until the container is removed
    eid2 = secrets.token_hex(32)
    xproc2, none = await mon.exec(proc.id, eid2, rig.process_spec(proc.id, ["sleep", "60"]),
                                  rig.runc, attach=False)
    assert none is None and mon.alive(xproc2)

    with pytest.raises(InternalError):  # not an executable: the runtime's message
        await mon.exec(proc.id, secrets.token_hex(32),
                       rig.process_spec(proc.id, ["/no/such/binary"]), rig.runc)
    stream.close()
    await mon.remove(proc.id)
    assert not os.path.exists(mon.exec_dir(eid2)) and not os.path.exists(mon.exec_dir(eid))
    await assert_gone(rig, mon, proc.id, rig.runc)
    assert os.listdir(os.path.join(rig.mon_root, "x")) == []


async def test_exec_in_stopped_container(rig: Rig) -> None:
    mon = await rig.monitor()
    proc, stream = await rig.run(mon, ["true"])
    await asyncio.wait_for(mon.wait(proc), 10)
    with pytest.raises((Conflict, InternalError)):
        await mon.exec(proc.id, secrets.token_hex(32),
                       rig.process_spec(proc.id, ["true"]), rig.runc)
    with pytest.raises(NotFound):
        await mon.exec("0" * 64, secrets.token_hex(32), rig.process_spec(proc.id, ["true"]),
                       rig.runc)
    await mon.remove(proc.id)
    assert os.listdir(os.path.join(rig.mon_root, "x")) == []


# --- daemon restart ------------------------------------------------------------------

async def test_reattach_after_restart(rig: Rig) -> None:
    mon1 = await rig.monitor()
    proc1, stream1 = await rig.run(
        mon1, ["sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.05; done"],
        stdin=True)
    await read_until(stream1, b"tick1\n")
    eid = secrets.token_hex(32)
    xproc1, _ = await mon1.exec(proc1.id, eid, rig.process_spec(proc1.id, ["sleep", "60"]),
                                rig.runc, attach=False)
    # The daemon goes away: its connections and watchers close, its objects are dropped.
    stream1.close()
    await mon1.close()
    rig.monitors.remove(mon1)
    del mon1, stream1

    mon2 = await rig.monitor()
    found = {p.id: p for p in mon2.processes()}
    assert set(found) == {proc1.id, eid}
    proc = mon2.load(proc1.id)
    assert proc == proc1 and mon2.alive(proc) and mon2.exit_status(proc) is None
    assert mon2.load_exec(eid) == xproc1 and mon2.alive(xproc1)
    stream = await mon2.attach(proc)
    seen = await read_until(stream, b"\n")
    assert seen.startswith(b"tick")
    messages = await all_logs(rig.log_dir(proc.id), tail=3)
    assert len(messages) == 3 and all(m[1].startswith(b"tick") for m in messages)
    # exec into the container started before the "restart"
    xproc, xstream = await mon2.exec(proc.id, secrets.token_hex(32),
                                     rig.process_spec(proc.id, ["echo", "after"]), rig.runc)
    assert xstream is not None and (await collect(xstream))[STDOUT] == b"after\n"
    assert (await mon2.wait(xproc)).code == 0
    # the detached exec started before the restart is still waited on correctly
    os.kill(xproc1.pid, signal.SIGKILL)
    assert (await asyncio.wait_for(mon2.wait(xproc1), 10)).code == 137
    await rig.runc.kill(proc.id, "KILL")
    assert (await asyncio.wait_for(mon2.wait(proc), 10)).code == 137
    await collect(stream, 5)  # the attach stream ends with the container
    stream.close()
    await mon2.remove(proc.id)
    await assert_gone(rig, mon2, proc.id, rig.runc)


async def test_exit_while_daemon_down(rig: Rig) -> None:
    mon1 = await rig.monitor()
    proc, stream = await rig.run(mon1, ["sh", "-c", "sleep 0.3; exit 5"])
    stream.close()
    await mon1.close()
    rig.monitors.remove(mon1)
    del mon1
    await asyncio.sleep(1.0)  # exits while nobody watches

    mon2 = await rig.monitor()
    proc2 = mon2.load(proc.id)
    assert not mon2.alive(proc2)
    status = mon2.exit_status(proc2)
    assert status is not None and status.code == 5 and not status.error
    assert (await asyncio.wait_for(mon2.wait(proc2), 1)) == status
    await mon2.remove(proc.id)
    await assert_gone(rig, mon2, proc.id, rig.runc)


async def test_monitor_killed_is_reported(rig: Rig) -> None:
    mon = await rig.monitor()
    proc, stream = await rig.run(mon, ["sleep", "60"])
    waiter = asyncio.ensure_future(mon.wait(proc))
    await asyncio.sleep(0.05)
    os.kill(proc.conmon_pid, signal.SIGKILL)
    status = await asyncio.wait_for(waiter, 5)
    assert status.code == 255 and "monitor" in status.error
    stream.close()
    await mon.remove(proc.id)  # the orphaned container is still deleted
    await assert_gone(rig, mon, proc.id, rig.runc)


# --- crun on a hybrid host -----------------------------------------------------------


def _host_cgroup_mounts() -> set[str]:
    """The host's cgroup mounts (mount point and source): what the crun wrapper
    unmounts in its own namespace. Only these: daemons running beside this test
    mount and unmount root filesystems, namespace pins and overlays meanwhile."""
    out = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == "/sys/fs/cgroup" or fields[4].startswith("/sys/fs/cgroup/"):
            out.add(" ".join(fields[3:5]))
    return out


async def test_crun_hybrid(rig: Rig) -> None:
    assert shutil.which("crun"), "crun is not installed (make deps)"
    mounts_before = _host_cgroup_mounts()
    mon = await rig.monitor()
    proc, stream = await rig.run(
        mon, ["sh", "-c", "echo out; echo err >&2; sleep 0.2; exit 3"], runtime=rig.crun)
    assert (await rig.crun.state(proc.id))["status"] in ("running", "stopped")
    out = await collect(stream)
    assert out == {STDOUT: b"out\n", STDERR: b"err\n"}
    assert (await asyncio.wait_for(mon.wait(proc), 10)).code == 3
    await mon.remove(proc.id)
    await assert_gone(rig, mon, proc.id, rig.crun)

    proc, stream = await rig.run(mon, ["sleep", "60"], runtime=rig.crun)
    assert os.path.isdir(os.path.join(CGROUP_ROOT, "memory", rig.parent, proc.id))
    xproc, xstream = await mon.exec(proc.id, secrets.token_hex(32),
                                    rig.process_spec(proc.id, ["sh", "-c", "echo x; exit 4"]),
                                    rig.crun)
    assert xstream is not None and (await collect(xstream))[STDOUT] == b"x\n"
    assert (await asyncio.wait_for(mon.wait(xproc), 10)).code == 4
    await rig.crun.pause(proc.id)
    assert (await rig.crun.state(proc.id))["status"] == "paused"
    await rig.crun.resume(proc.id)
    await rig.crun.kill(proc.id, "KILL")
    assert (await asyncio.wait_for(mon.wait(proc), 10)).code == 137
    stream.close()
    await mon.remove(proc.id)
    await assert_gone(rig, mon, proc.id, rig.crun)
    # the wrapper's unmount stayed in its own mount namespace
    assert _host_cgroup_mounts() == mounts_before


def test_crun_hybrid_leaves_shared_host_mounts_alone(tmp_path: Path) -> None:
    """On systemd hosts mounts are shared: an unmount in a plain `unshare -m
    --propagation unchanged` namespace would reach the host. Simulated in a
    throwaway namespace whose mounts are made shared first."""
    if not os.path.isdir("/sys/fs/cgroup/unified"):
        pytest.skip("not a hybrid cgroup host")
    script = ('mount --make-rshared / && "$0" --root "$1" list >/dev/null && '
              'grep -c " /sys/fs/cgroup/unified " /proc/self/mountinfo')
    out = subprocess.run(["unshare", "--mount", "--propagation", "unchanged", "sh", "-c",
                          script, CRUN_HYBRID, str(tmp_path / "crun")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


# --- logs ----------------------------------------------------------------------------

async def test_log_rotation_and_follow(rig: Rig) -> None:
    mon = await rig.monitor()
    cid = rig.bundle(mon, ["sh", "-c",
                           "i=0; while read x; do j=0; while [ $j -lt 100 ]; do "
                           "echo line$i; i=$((i+1)); j=$((j+1)); done; done; echo done >&2"])
    log_dir = rig.log_dir(cid)
    proc = await mon.create(cid, rig.runc, stdin=True, log_path=logs_mod.log_path(log_dir))
    stream = await mon.attach(proc)
    rotator = LogRotator()
    rotator.add(cid, log_dir, RotationPolicy(max_size=2000, max_file=100),
                lambda: mon.reopen_log(proc))
    stop = asyncio.Event()
    followed: list[bytes] = []

    async def follow() -> None:
        async for _s, data, _ts in read_logs(log_dir, follow=True, stop=stop):
            followed.append(data)

    follower = asyncio.ensure_future(follow())
    await rig.runc.start(cid)
    await asyncio.sleep(0.1)
    for _ in range(4):  # 100 lines each, rotations happen in between
        await stream.send(b"\n")
        await asyncio.sleep(0.02)
    stream.close_stdin()
    await collect(stream)
    await asyncio.wait_for(mon.wait(proc), 10)
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(follower, 10)
    rotator.discard(cid)
    rotator.close()

    expected = [f"line{i}\n".encode() for i in range(400)] + [b"done\n"]
    files = logs_mod.log_files(log_dir)
    assert len(files) > 3, files  # rotated several times
    assert [d for _, d, _ in await all_logs(log_dir)] == expected
    assert followed == expected
    assert [d for _, d, _ in await all_logs(log_dir, tail=5)] == expected[-5:]
    assert [d for _, d, _ in await all_logs(log_dir, tail=1000)] == expected
    assert await all_logs(log_dir, tail=0) == []
    await mon.remove(cid)


async def test_log_max_file_drops_oldest(tmp_path: Path) -> None:
    base = logs_mod.log_path(str(tmp_path))
    reopened = []

    def reopen() -> None:  # what conmon does on ctl "2": a new, empty current file
        reopened.append(1)
        Path(base).write_bytes(b"")

    for i in range(5):
        with open(base, "ab") as f:
            f.write(b"2026-01-01T00:00:0%d.000000000+00:00 stdout F r%d\n" % (i, i))
        logs_mod.rotate(str(tmp_path), 3, reopen)
    assert sorted(os.listdir(tmp_path)) == ["container.log", "container.log.1", "container.log.2"]
    assert [d for _, d, _ in await all_logs(str(tmp_path))] == [b"r3\n", b"r4\n"]
    logs_mod.rotate(str(tmp_path), 1, reopen)  # max-file 1: truncation by the reopen
    assert len(reopened) == 6


async def test_follow_until_and_early_close(tmp_path: Path) -> None:
    base = logs_mod.log_path(str(tmp_path))

    def record(text: bytes) -> bytes:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
        return now.encode() + b" stdout F " + text + b"\n"

    Path(base).write_bytes(record(b"old"))
    got: list[bytes] = []

    async def follow() -> None:
        until = time.time_ns() + 400_000_000
        async for _s, data, _ts in read_logs(str(tmp_path), follow=True, until=until):
            got.append(data)

    task = asyncio.ensure_future(follow())
    await asyncio.sleep(0.1)
    with open(base, "ab") as f:
        f.write(record(b"new"))
    await asyncio.wait_for(task, 3)  # ends by itself once `until` has passed
    assert got == [b"old\n", b"new\n"]

    stream = read_logs(str(tmp_path), follow=True)
    assert (await stream.__anext__())[1] == b"old\n"
    await stream.aclose()  # a client going away mid-follow releases everything


# --- pure parts ----------------------------------------------------------------------

def test_k8s_records_and_timestamps() -> None:
    assert parse_timestamp(b"1970-01-01T00:00:01.5+00:00") == 1_500_000_000
    assert parse_timestamp(b"2026-11-29T02:53:45.594602368+01:00") == \
        parse_timestamp(b"2026-11-29T01:53:45.594602368Z")
    assert parse_timestamp(b"2000-01-01T00:00:00-00:30") == 946686600 * 10**9
    assert format_timestamp(1_500_000_000) == b"1970-01-01T00:00:01.500000000Z"
    asm = Assembler()
    lines = [b"1970-01-01T00:00:01.000000000+00:00 stdout P par",
             b"1970-01-01T00:00:02.000000000+00:00 stderr F e1",
             b"1970-01-01T00:00:03.000000000+00:00 stdout P t",
             b"1970-01-01T00:00:04.000000000+00:00 stdout F ial",
             b"1970-01-01T00:00:05.000000000+00:00 stdout F ",
             b"garbage",
             b"1970-01-01T00:00:06.000000000+00:00 stdout P open"]
    out = [m for line in lines for m in asm.feed(line)] + list(asm.flush())
    assert out == [(STDERR, b"e1\n", 2 * 10**9), (STDOUT, b"partial\n", 4 * 10**9),
                   (STDOUT, b"\n", 5 * 10**9), (STDOUT, b"open", 6 * 10**9)]


def test_log_opts() -> None:
    info = LogInfo("a" * 64, "n", "busybox", "sha256:" + "b" * 64, "sh")

    def rotation(driver: str, opts: dict[str, str]) -> RotationPolicy | None:
        return open_driver(driver, opts, info, lambda: False).rotation

    assert rotation("json-file", {}) == RotationPolicy(None, 1)
    # go-units FromHumanSize, as dockerd reads max-size: decimal units
    assert rotation("json-file", {"max-size": "10m", "max-file": "3"}) == \
        RotationPolicy(10_000_000, 3)
    assert rotation("json-file", {"max-file": "2"}) == RotationPolicy(None, 2)
    assert rotation("local", {}) == RotationPolicy(20 << 20, 5, True)
    assert rotation("none", {}) is None
    for bad in ({"max-file": "0"}, {"max-size": "ten"}, {"compress": "true"}):
        with pytest.raises(InternalError):
            rotation("json-file", bad)
    with pytest.raises(InvalidParameter):
        validate("json-file", {"bogus": "1"})


def test_runtime_messages() -> None:
    runc = b'{"level":"error","msg":"container does not exist","time":"x"}\n'
    assert runtime_message(runc) == "container does not exist"
    logrus = b'time="x" level=error msg="runc create failed: \\"bad\\" rootfs"\n'
    assert runtime_message(logrus) == 'runc create failed: "bad" rootfs'
    assert runtime_message(b"crun: something broke\n") == "crun: something broke"
    assert isinstance(translate_error("kill", "c", "container does not exist"), NotFound)
    assert isinstance(translate_error("kill", "c", "container not running"), Conflict)
    crun_missing = "error opening file `/run/crun/c/status`: No such file or directory"
    assert isinstance(translate_error("kill", "c", crun_missing), NotFound)
    assert isinstance(translate_error("start", "c", "exec format error"), InternalError)
    not_found = 'exec: "x": executable file not found in $PATH'
    assert isinstance(translate_error("create", "c", not_found), InternalError)
    assert start_failure_exit_code(not_found) == 127
    assert start_failure_exit_code('exec: "/etc/passwd": permission denied') == 126
    assert start_failure_exit_code("open executable: Operation not permitted") == 126
    assert start_failure_exit_code("something else") == 128


def test_logged_error(tmp_path: Path) -> None:
    log = tmp_path / "runtime.log"
    assert logged_error(str(log)) == ""  # no file: the runtime logged nothing
    log.write_text('{"level":"warning","msg":"w","time":"x"}\n')
    assert logged_error(str(log)) == ""  # warnings are not failures
    log.write_text('{"level":"error","msg":"a","time":"x"}\n{"level":"fatal","msg":"b"}\n')
    assert logged_error(str(log)) == "a; b"


async def run_foreground(rig: Rig, args: list[str]) -> tuple[ForegroundRun, int, bytes, bytes]:
    cid = secrets.token_hex(32)
    bundle = rig.tmp / "fg" / cid[:12]
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(rig.spec(cid, args)))
    step = await rig.runc.run(cid, str(bundle), str(bundle / "runtime.log"))
    out, err = await asyncio.wait_for(
        asyncio.gather(step.stdout.read(), step.stderr.read()), 10)
    return step, await step.wait(), out, err


async def test_foreground_run(rig: Rig) -> None:
    step, code, out, err = await run_foreground(
        rig, ["sh", "-c", "echo out; echo failed >&2; exit 3"])
    assert (code, out, err) == (3, b"out\n", b"failed\n")
    assert step.failure() is None and not await step.is_runtime_output(err)
    await step.delete()
    with pytest.raises(NotFound):
        await rig.runc.state(step.cid)

    step, code, out, err = await run_foreground(rig, ["nonexistent"])
    failure = step.failure()
    assert code != 0 and out == b"" and await step.is_runtime_output(err)
    assert failure is not None and str(failure) == (
        'failed to create shim task: OCI runtime create failed: runc create failed: unable '
        'to start container process: exec: "nonexistent": executable file not found in '
        '$PATH: unknown')
    await step.delete()


def test_exit_status_record() -> None:
    status = ExitStatus(3, 1)
    assert status.code == 3 and not status.oom_killed and status.error == ""
