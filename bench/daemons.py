"""Start and stop the daemons under benchmark on private temporary roots.

Each daemon gets its own directory under one scratch root in /tmp (socket, data
root, exec root, pidfile, empty config file, log). `DaemonSet` owns them all:
leaving its `with` block - normally, on an exception, on Ctrl-C or on SIGTERM
(turned into KeyboardInterrupt by `install_signal_handlers`) - stops every
daemon - after force-removing its containers through the API - (SIGTERM, then
SIGKILL), kills any of its descendants still alive (the reference daemon's
managed containerd) and any container monitor left over (conmon,
containerd-shim: found by the scratch path in their argv) with its container,
unmounts whatever is still mounted under the scratch root and deletes it.

Also here: a tiny keep-alive HTTP/1.1 client over a unix socket (stdlib only).
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_DOCKERD = "/usr/sbin/dockerd"
MNT_DETACH = 2


# --- HTTP over a unix socket -------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX; one instance keeps its connection alive between requests."""

    def __init__(self, path: str, timeout: float = 60.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def request(path: str, method: str, url: str, timeout: float = 10.0, body: Any = None
            ) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; a non-bytes body is sent as JSON."""
    headers = {}
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = UnixHTTPConnection(path, timeout=timeout)
    try:
        conn.request(method, url, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# --- processes and mounts ------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, start time) of a live process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[1]), int(fields[19])


def descendants(root_pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live descendant of root_pid."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _proc_stat(int(name))
        if st is not None:
            children.setdefault(st[0], []).append(int(name))
            starts[int(name)] = st[1]
    out, todo = [], [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append((child, starts[child]))
            todo.append(child)
    return out


def _kill_if_same(pid: int, start: int, sig: int) -> bool:
    st = _proc_stat(pid)
    if st is None or st[1] != start:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def processes_mentioning(path: str) -> list[tuple[int, int]]:
    """(pid, start time) of live processes with `path` or a path below it in their argv
    (zombies have none), other than this one. That is how the per-container monitors of
    a daemon are found (conmon, containerd-shim): they are not its descendants."""
    out = []
    prefix = path.rstrip("/") + "/"
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        argv = _cmdline(pid)
        if any(a == path or prefix in a for a in argv):
            st = _proc_stat(pid)
            if st is not None:
                out.append((pid, st[1]))
    return out


def mounts_under(root: str) -> list[str]:
    root = os.path.realpath(root)
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].encode().decode("unicode_escape")
                if point == root or point.startswith(root + "/"):
                    out.append(point)
    except OSError:
        pass
    return out


def unmount_all(root: str) -> list[str]:
    """Lazily unmount everything mounted at or below root, deepest first."""
    libc = ctypes.CDLL(None, use_errno=True)
    done = []
    for _ in range(5):  # stacked mounts need several passes
        points = sorted(set(mounts_under(root)), key=lambda p: p.count("/"), reverse=True)
        if not points:
            break
        for point in points:
            if libc.umount2(point.encode(), MNT_DETACH) == 0:
                done.append(point)
    return done


# --- daemons -------------------------------------------------------------------------------


@dataclass
class Daemon:
    kind: str                       # "ours" or "reference"
    dir: str
    argv: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    version: dict[str, Any] = field(default_factory=dict)
    api_version: str = ""
    _log: Any = None

    @property
    def sock(self) -> str:
        return os.path.join(self.dir, "sock")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "daemon.log")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self, config_dir: str) -> dict[str, str]:
        """Environment for the stock CLI talking to this daemon."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("DOCKER_") and k != "BUILDKIT_HOST"}
        env.update(DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=config_dir,
                   DOCKER_CLI_HINTS="false")
        return env

    def start(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        data, exec_root = os.path.join(self.dir, "data"), os.path.join(self.dir, "exec")
        pidfile, config = os.path.join(self.dir, "pid"), os.path.join(self.dir, "daemon.json")
        with open(config, "w") as f:
            f.write("{}\n")
        common = ["-H", f"unix://{self.sock}", "--data-root", data, "--exec-root", exec_root,
                  "--pidfile", pidfile, "--config-file", config]
        if self.kind == "ours":
            self.argv = [sys.executable, "-m", "dockerd_py", *common]
        else:
            self.argv = [REFERENCE_DOCKERD, *common, "--storage-driver", "overlay2",
                         "--bridge", "none", "--iptables=false", "--ip-masq=false"]
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} daemon exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                status, headers, body = request(self.sock, "GET", "/_ping", timeout=2)
            except OSError:
                time.sleep(0.1)
                continue
            if status == 200:
                self.api_version = headers.get("api-version", "")
                _, _, body = request(self.sock, "GET", "/version")
                self.version = json.loads(body)
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} daemon not ready after {timeout:.0f}s:\n"
                           + self.log_tail())

    def log_tail(self, lines: int = 25) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"

    def remove_containers(self, timeout: float = 30.0) -> int:
        """Force-remove every container of a live daemon through the API (what
        `docker rm -f $(docker ps -aq)` does); returns how many. Best effort."""
        if self.proc is None or self.proc.poll() is not None or not self.api_version:
            return 0
        base = f"/v{self.api_version}"
        try:
            status, _, body = request(self.sock, "GET", f"{base}/containers/json?all=1",
                                      timeout=timeout)
        except OSError:
            return 0
        if status != 200:
            return 0
        ids = [c["Id"] for c in json.loads(body)]

        def rm(cid: str) -> None:
            try:
                request(self.sock, "DELETE", f"{base}/containers/{cid}?force=1&v=1",
                        timeout=timeout)
            except OSError:
                pass
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(rm, ids))
        return len(ids)

    def kill_monitors(self) -> int:
        """SIGKILL what is left of this daemon's containers after it is gone: monitors
        (conmon, containerd-shim: their argv names a path under self.dir) and their
        descendants, the container processes. Returns how many processes."""
        monitors = processes_mentioning(self.dir)
        victims = [kid for pid, _ in monitors for kid in descendants(pid)] + monitors
        return sum(_kill_if_same(pid, start, signal.SIGKILL) for pid, start in victims)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        kids = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Whatever it started and left behind (e.g. a managed containerd), by pid.
        for pid, start in kids:
            if _kill_if_same(pid, start, signal.SIGTERM):
                for _ in range(50):
                    if _proc_stat(pid) is None or _proc_stat(pid)[1] != start:  # type: ignore[index]
                        break
                    time.sleep(0.1)
                else:
                    _kill_if_same(pid, start, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.proc = None


class DaemonSet:
    """The scratch root and the daemons in it; a context manager that always cleans up."""

    def __init__(self, kinds: list[str]) -> None:
        self.root = tempfile.mkdtemp(prefix="dbench-", dir="/tmp")
        os.chmod(self.root, 0o755)
        self.daemons = {k: Daemon(k, os.path.join(self.root, k)) for k in kinds}
        self.cli_config = os.path.join(self.root, "cli")
        os.makedirs(self.cli_config)

    def __enter__(self) -> DaemonSet:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, Exception):
            for d in self.daemons.values():
                print(f"--- last lines of the {d.kind} daemon's log ---\n{d.log_tail()}",
                      file=sys.stderr)
        self.close()

    def start(self, timeout: float = 60.0) -> dict[str, str]:
        """Start all daemons in parallel; returns {kind: error} for those that failed
        (and drops them from the set)."""
        for d in self.daemons.values():
            d.start()
        failed = {}
        for kind, d in list(self.daemons.items()):
            try:
                d.wait_ready(timeout)
            except RuntimeError as e:
                failed[kind] = str(e)
                d.stop()
                del self.daemons[kind]
        return failed

    def close(self) -> None:
        # Ignore further Ctrl-C while cleaning up, so that nothing is left half-done.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for d in self.daemons.values():
                try:
                    n = d.remove_containers()
                    if n:
                        print(f"note: removed {n} leftover container(s) of {d.kind}",
                              file=sys.stderr)
                except Exception as e:
                    print(f"warning: removing {d.kind}'s containers: {e}", file=sys.stderr)
                try:
                    d.stop()
                except Exception as e:  # keep cleaning the others
                    print(f"warning: stopping {d.kind}: {e}", file=sys.stderr)
                n = d.kill_monitors()
                if n:
                    print(f"note: killed {n} leftover container process(es) of {d.kind}",
                          file=sys.stderr)
            left = unmount_all(self.root)
            if left:
                print(f"note: unmounted {len(left)} leftover mount(s) under {self.root}",
                      file=sys.stderr)
            shutil.rmtree(self.root, ignore_errors=True)
            if os.path.exists(self.root):
                print(f"warning: could not remove {self.root}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, old)


def install_signal_handlers() -> None:
    """SIGINT (even if inherited as ignored, e.g. under `cmd &`), SIGTERM and SIGHUP all
    unwind as KeyboardInterrupt, so `finally` blocks clean up."""
    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGHUP, raise_interrupt)
