"""The daemon process: flags, daemon.json, pid file and root locks, listeners,
signals (SIGTERM, SIGHUP reload).

Every test starts its own daemons (never the session daemon) under short /tmp
directories, and stops them whatever happens.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DOCKER_CLI, REPO_ROOT, _ping
from .lifetime import die_with_test_run

START_TIMEOUT = 30.0   # hang guards only: nothing here asserts on durations
EXIT_TIMEOUT = 30.0


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}", pytrace=False)
        time.sleep(0.05)


class LocalDaemon:
    """One dockerd-py subprocess; paths default to files under its own directory."""

    def __init__(self, base: Path, *, hosts: list[str] | None = None,
                 data_root: Path | None = None, exec_root: Path | None = None,
                 pidfile: Path | None = None, config: dict[str, Any] | str | None = None,
                 extra: list[str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="d", dir=base))
        self.sock = str(self.dir / "d.sock")
        self.hosts = hosts if hosts is not None else [f"unix://{self.sock}"]
        self.data_root = data_root or self.dir / "root"
        self.exec_root = exec_root or self.dir / "exec"
        self.pidfile = pidfile or self.dir / "pid"
        self.config_file = self.dir / "daemon.json"
        self.write_config({} if config is None else config)
        self.extra = extra or []
        self.log = self.dir / "log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def unix_sockets(self) -> list[str]:
        return [h[len("unix://"):] for h in self.hosts if h.startswith("unix://")]

    def write_config(self, config: dict[str, Any] | str) -> None:
        text = config if isinstance(config, str) else json.dumps(config)
        self.config_file.write_text(text)

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "dockerd_py"]
        for h in self.hosts:
            argv += ["-H", h]
        argv += ["--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                 "--pidfile", str(self.pidfile), "--config-file", str(self.config_file),
                 "--log-level", "debug", *self.extra]
        return argv

    def spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), cwd=REPO_ROOT, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, preexec_fn=die_with_test_run)
        return self.proc

    def start(self) -> LocalDaemon:
        proc = self.spawn()
        sock = self.unix_sockets[0]
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(sock):
            if proc.poll() is not None:
                pytest.fail(f"daemon exited with {proc.returncode} during start:\n"
                            f"{self.log_text()}", pytrace=False)
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                pytest.fail(f"daemon did not answer /_ping:\n{self.log_text()}", pytrace=False)
            time.sleep(0.05)
        return self

    def run_to_exit(self) -> tuple[int, str]:
        """Start a daemon that is expected to refuse: (exit code, its output)."""
        proc = self.spawn()
        try:
            code = proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop(signal.SIGKILL)
            pytest.fail(f"daemon was expected to refuse to start, but runs:\n{self.log_text()}",
                        pytrace=False)
        return code, self.log_text()

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def docker(self, *args: str, host: str | None = None, check: bool = True,
               input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
                            "DOCKER_API_VERSION")}
        cfg = self.dir / "cli"
        cfg.mkdir(exist_ok=True)
        env.update(DOCKER_HOST=host or f"unix://{self.unix_sockets[0]}", DOCKER_CONFIG=str(cfg),
                   DOCKER_CLI_HINTS="false")
        raw = subprocess.run([DOCKER_CLI, *args], env=env, input=input, capture_output=True,
                             timeout=120)
        result = subprocess.CompletedProcess(raw.args, raw.returncode,
                                             raw.stdout.decode(errors="replace"),
                                             raw.stderr.decode(errors="replace"))
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stderr}\n--- daemon log ---\n{self.log_text()}")
        return result


@pytest.fixture
def daemons() -> Iterator[Callable[..., LocalDaemon]]:
    """make(**kw) -> LocalDaemon (not started); all are stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="dpl-", dir="/tmp"))
    made: list[LocalDaemon] = []

    def make(**kw: Any) -> LocalDaemon:
        made.append(LocalDaemon(base, **kw))
        return made[-1]

    yield make
    for d in made:
        d.stop(signal.SIGKILL if d.proc and d.proc.poll() is None else signal.SIGTERM)
    if not os.environ.get("DPY_KEEP_TMP"):
        shutil.rmtree(base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- isolation

def test_two_daemons_side_by_side(daemons: Callable[..., LocalDaemon], busybox_tar: Path) -> None:
    a, b = daemons().start(), daemons().start()
    image_id = a.docker("import", str(busybox_tar), "side:one").stdout.strip()
    assert image_id.startswith("sha256:")
    assert a.docker("images", "-q", "--no-trunc").stdout.split() == [image_id]
    assert b.docker("images", "-q", "--no-trunc").stdout.split() == []
    r = b.docker("image", "inspect", "side:one", check=False)
    assert r.returncode == 1 and "No such image: side:one" in r.stderr
    fmt = "{{.DockerRootDir}} {{.Images}}"
    assert a.docker("info", "--format", fmt).stdout.split() == [str(a.data_root), "1"]
    assert b.docker("info", "--format", fmt).stdout.split() == [str(b.data_root), "0"]


# --------------------------------------------------------------------------- pid file

def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


@pytest.mark.parametrize("stale", ["dead", "zombie", "garbage", "empty"])
def test_stale_pidfile_does_not_stop_start(daemons: Callable[..., LocalDaemon],
                                           stale: str) -> None:
    d = daemons()
    zombie = 0
    try:
        if stale == "dead":
            content = str(_dead_pid())
        elif stale == "zombie":
            zombie = os.fork()
            if zombie == 0:
                os._exit(0)  # the child: exits at once and is not reaped until the end
            _wait_for(lambda: _proc_state(zombie) == "Z", "the forked child to be a zombie")
            content = str(zombie)
        elif stale == "garbage":
            content = "not a pid\n"
        else:
            content = ""
        d.pidfile.write_text(content)
        d.start()
        assert d.pidfile.read_text().strip() == str(d.proc.pid)  # type: ignore[union-attr]
        if zombie:
            assert _proc_state(zombie) == "Z"  # still there while the daemon runs
        assert d.docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip() == "1.50"
        assert d.stop() == 0
        assert not d.pidfile.exists()
    finally:
        if zombie:
            os.waitpid(zombie, 0)


@pytest.mark.parametrize("shared", ["pidfile", "data-root", "exec-root", "socket"])
def test_second_daemon_refuses(daemons: Callable[..., LocalDaemon], shared: str) -> None:
    first = daemons().start()
    kw: dict[str, Any] = {}
    if shared == "pidfile":
        kw["pidfile"] = first.pidfile
    elif shared == "data-root":
        kw["data_root"] = first.data_root
    elif shared == "exec-root":
        kw["exec_root"] = first.exec_root
    else:
        kw["hosts"] = [f"unix://{first.sock}"]
    second = daemons(**kw)
    code, output = second.run_to_exit()
    assert code == 1, output
    expected = {
        "pidfile": f"pid file found, ensure dockerd-py is not running or delete {first.pidfile}",
        "data-root": f"data root {first.data_root} is in use by another daemon",
        "exec-root": f"exec root {first.exec_root} is in use by another daemon",
        "socket": f"{first.sock}: address already in use by a running daemon",
    }[shared]
    assert f"failed to start daemon: {expected}" in output
    assert "Traceback" not in output
    # the first daemon is untouched: its pid file, its socket, its answers
    assert first.proc is not None and first.proc.poll() is None
    assert first.pidfile.read_text().strip() == str(first.proc.pid)
    assert stat.S_ISSOCK(os.stat(first.sock).st_mode)
    assert _ping(first.sock)
    assert first.docker("info", "--format", "{{.DockerRootDir}}").stdout.strip() \
        == str(first.data_root)
    if shared != "socket":
        assert not os.path.exists(second.sock)
    if shared != "pidfile":
        assert not second.pidfile.exists()
    assert first.stop() == 0


def test_kill9_leaves_nothing_that_blocks_restart(daemons: Callable[..., LocalDaemon]) -> None:
    d = daemons().start()
    d.stop(signal.SIGKILL)
    assert os.path.exists(d.sock) and d.pidfile.exists()  # what a crash leaves behind
    d.start()
    assert d.pidfile.read_text().strip() == str(d.proc.pid)  # type: ignore[union-attr]
    assert d.stop() == 0


# --------------------------------------------------------------------------- signals

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal(daemons: Callable[..., LocalDaemon], sig: int) -> None:
    d = daemons().start()
    assert d.pidfile.exists() and os.path.exists(d.sock)
    assert d.stop(sig) == 0, d.log_text()
    assert not os.path.exists(d.sock)
    assert not d.pidfile.exists()
    assert "Daemon shutdown complete" in d.log_text()


def test_sigterm_with_open_streams(daemons: Callable[..., LocalDaemon]) -> None:
    """An idle /events stream and a stalled `docker load` do not keep the daemon alive."""
    d = daemons().start()
    events = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    load = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        events.settimeout(EXIT_TIMEOUT)
        events.connect(d.sock)
        events.sendall(b"GET /v1.50/events HTTP/1.1\r\nHost: docker\r\n\r\n")
        assert events.recv(65536).startswith(b"HTTP/1.1 200 ")
        # a layer of 64 MB announced, 1 MB sent, then nothing
        member = tarfile.TarInfo("abc/layer.tar")
        member.size = 64 << 20
        body = member.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * (1 << 20)
        load.connect(d.sock)
        load.sendall(b"POST /v1.50/images/load HTTP/1.1\r\nHost: docker\r\n"
                     + f"Content-Length: {len(body) + (64 << 20)}\r\n\r\n".encode() + body)
        ingest = d.data_root / "content" / "ingest"
        _wait_for(lambda: bool(os.listdir(ingest)), "the load to start writing")

        assert d.stop(signal.SIGTERM) == 0, d.log_text()
        assert not os.path.exists(d.sock) and not d.pidfile.exists()
        rest = b""
        while chunk := events.recv(65536):  # the stream ends (the hang guard is the timeout)
            rest += chunk
    finally:
        events.close()
        load.close()
    d.start()
    assert os.listdir(d.data_root / "content" / "ingest") == []
    assert d.docker("images", "-aq").stdout == ""
    assert d.stop() == 0


def _labels(d: LocalDaemon) -> list[str]:
    return json.loads(d.docker("info", "--format", "{{json .Labels}}").stdout)


def test_sighup_reload(daemons: Callable[..., LocalDaemon]) -> None:
    d = daemons(config={"labels": ["before=1"]}).start()
    assert _labels(d) == ["before=1"]
    assert d.docker("info", "--format", "{{.Debug}}").stdout.strip() == "false"
    pid = d.proc.pid  # type: ignore[union-attr]

    d.write_config({"labels": ["a=b"], "debug": True})
    os.kill(pid, signal.SIGHUP)
    _wait_for(lambda: _labels(d) == ["a=b"], "the new labels after SIGHUP")
    assert d.docker("info", "--format", "{{.Debug}}").stdout.strip() == "true"
    assert d.proc.poll() is None and d.proc.pid == pid  # type: ignore[union-attr]

    # an invalid file on SIGHUP: error logged, old configuration kept, daemon keeps serving
    for bad in ("{not json", json.dumps({"labels": ["c=d"], "no-such-option": 1}),
                json.dumps({"labels": "c=d"})):
        errors_before = d.log_text().count("Error reconfiguring the daemon")
        d.write_config(bad)
        os.kill(pid, signal.SIGHUP)
        _wait_for(lambda n=errors_before: d.log_text().count("Error reconfiguring the daemon") > n,
                  "an error in the log for the invalid daemon.json")
        assert _labels(d) == ["a=b"]
        assert d.proc.poll() is None  # type: ignore[union-attr]
    assert "no-such-option" in d.log_text()
    assert d.stop() == 0


# --------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("file_cfg,flags,key", [
    ({"labels": ["x=y"]}, ["--label", "a=b"], "labels"),
    ({"log-level": "info"}, [], "log_level"),  # the helper always passes --log-level
    ({"debug": True}, ["--debug"], "debug"),
])
def test_flag_and_file_clash(daemons: Callable[..., LocalDaemon], file_cfg: dict[str, Any],
                             flags: list[str], key: str) -> None:
    d = daemons(config=file_cfg, extra=flags)
    code, output = d.run_to_exit()
    assert code == 1, output
    assert ("the following directives are specified both as a flag and in the configuration "
            "file: ") in output
    assert key.replace("_", "-") in output or key in output
    assert not os.path.exists(d.sock) and not d.pidfile.exists()


@pytest.mark.parametrize("text,message", [
    (json.dumps({"no-such-option": True}),
     "the following directives don't match any configuration option: no-such-option"),
    ("{not json", "unable to configure the Docker daemon with file"),
    ("[1, 2]", "unable to configure the Docker daemon with file"),
])
def test_bad_config_file_refused(daemons: Callable[..., LocalDaemon], text: str,
                                 message: str) -> None:
    d = daemons(config=text)
    code, output = d.run_to_exit()
    assert code == 1, output
    assert message in output
    assert "Traceback" not in output
    assert not os.path.exists(d.sock)


@pytest.mark.parametrize("key,value", [
    ("labels", "a=b"),            # a string, not a list: must not become ['a', '=', 'b']
    ("labels", [1, 2]),
    ("debug", "false"),           # a string, not a bool: must not be truthy
    ("live-restore", 0),
    ("max-concurrent-downloads", "3"),
    ("max-concurrent-downloads", True),
    ("data-root", ["/tmp/x"]),
    ("log-opts", ["max-size=1m"]),
])
def test_wrongly_typed_config_value_refused(daemons: Callable[..., LocalDaemon], key: str,
                                            value: Any) -> None:
    d = daemons(config={key: value})
    code, output = d.run_to_exit()
    assert code == 1, output
    assert f"invalid value for {key}" in output
    assert not os.path.exists(d.sock)


def test_missing_config_file_refused(daemons: Callable[..., LocalDaemon]) -> None:
    d = daemons()
    d.config_file.unlink()
    code, output = d.run_to_exit()
    assert code == 1
    assert f"unable to configure the Docker daemon with file {d.config_file}" in output


# --------------------------------------------------------------------------- listeners

@pytest.mark.parametrize("addr", ["tcp://0.0.0.0:2375", "tcp://[::]:2375", "0.0.0.0:2375"])
def test_public_tcp_without_tlsverify_refused(daemons: Callable[..., LocalDaemon],
                                              addr: str) -> None:
    d = daemons()
    d.hosts = [f"unix://{d.sock}", addr]
    code, output = d.run_to_exit()
    assert code == 1, output
    assert "without --tlsverify" in output
    assert not os.path.exists(d.sock)
    assert not d.pidfile.exists()


def test_loopback_tcp(daemons: Callable[..., LocalDaemon]) -> None:
    port = _free_port()
    d = daemons()
    d.hosts = [f"unix://{d.sock}", f"tcp://127.0.0.1:{port}"]
    d.start()
    host = f"tcp://127.0.0.1:{port}"
    out = d.docker("version", "--format", "{{.Server.APIVersion}}", host=host)
    assert out.stdout.strip() == "1.50"
    assert d.docker("info", "--format", "{{.DockerRootDir}}", host=host).stdout.strip() \
        == str(d.data_root)
    assert d.stop() == 0
    with socket.socket() as s:  # the port is released
        s.bind(("127.0.0.1", port))


def test_several_unix_sockets(daemons: Callable[..., LocalDaemon]) -> None:
    d = daemons()
    second = str(d.dir / "second.sock")
    d.hosts = [f"unix://{d.sock}", f"unix://{second}"]
    d.start()
    for sock in (d.sock, second):
        assert _ping(sock)
        out = d.docker("version", "--format", "{{.Server.APIVersion}}", host=f"unix://{sock}")
        assert out.stdout.strip() == "1.50"
    assert d.stop() == 0
    assert not os.path.exists(d.sock) and not os.path.exists(second)


@pytest.mark.parametrize("group", [None, "root"])
def test_unix_socket_permissions(daemons: Callable[..., LocalDaemon], group: str | None) -> None:
    d = daemons(extra=["--group", group] if group else [])
    d.start()
    st = os.stat(d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    wanted = group or "docker"
    try:
        gid = grp.getgrnam(wanted).gr_gid
    except KeyError:
        gid = None  # no such group on this machine: only the mode is defined
    if gid is not None:
        assert st.st_gid == gid
    assert d.stop() == 0
