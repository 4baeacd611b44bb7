"""Logging drivers as dockerd 20.10 applies them (issue 11), through docker-py, aiodocker
and the CLI: which drivers exist, which options each accepts at create (400) and at
start (500, "failed to initialize logging driver"), `none` recording nothing and
refusing reads (501) and attach replays, `local`'s defaults (20 MB x 5, compressed),
json-file's compress, the daemon's own log-opts checked when it starts, and journald
for real: conmon writes the journal, `docker logs` reads it back. The journald tests
run a dockerd-py beside a systemd-journald of its own, in a private mount namespace
(their /run/systemd/journal and journal files on tmpfs), so nothing reaches the host's
journal. Every message expected here is dockerd 20.10's, seen on this machine.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DOCKER_CLI, REPO_ROOT, Daemon, _ping
from .lifetime import die_with_test_run

JOURNALD = "/lib/systemd/systemd-journald"
START_TIMEOUT = 30.0


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}", pytrace=False)
        time.sleep(0.05)


def api_error(call: Callable[[], Any]) -> tuple[int, str]:
    import docker.errors

    with pytest.raises(docker.errors.APIError) as e:
        call()
    return e.value.status_code, str(e.value.explanation)


def log_config(driver: str, **opts: str) -> Any:
    from docker.types import LogConfig

    return LogConfig(type=driver, config=opts)


def state_dir(daemon: Daemon, cid: str) -> Path:
    return daemon.data_root / "containers" / cid


def log_files(daemon: Daemon, cid: str) -> list[str]:
    return sorted(p.name for p in state_dir(daemon, cid).iterdir()
                  if p.name.startswith("container.log"))


@pytest.fixture
def made(dockerpy: Any) -> Iterator[list[Any]]:
    """Containers made by a test, removed afterwards."""
    containers: list[Any] = []
    yield containers
    for c in containers:
        with contextlib.suppress(Exception):
            c.remove(force=True)


# --- which drivers, which options ------------------------------------------------------

def test_unknown_drivers_refused_at_create(dockerpy: Any, busybox_image: str) -> None:
    # syslog and the other network drivers are not implemented: refused as dockerd
    # refuses a driver it does not have, never accepted and ignored.
    for driver in ("nosuch", "syslog", "gelf", "fluentd"):
        code, message = api_error(lambda d=driver: dockerpy.containers.create(
            busybox_image, "true", log_config=log_config(d)))
        assert (code, message) == (
            400, f'error looking up logging plugin {driver}: plugin "{driver}" not found')
    info = dockerpy.info()
    assert info["Plugins"]["Log"] == ["journald", "json-file", "local"]


CREATE_REFUSALS = [
    ("json-file", {"foo": "1"}, "unknown log opt 'foo' for json-file log driver"),
    ("local", {"labels": "a"}, "unknown log opt 'labels' for log driver local"),
    ("local", {"tag": "{{.Name}}"}, "unknown log opt 'tag' for log driver local"),
    ("journald", {"max-size": "1m"}, "unknown log opt 'max-size' for journald log driver"),
    ("json-file", {"mode": "bad"}, "logger: logging mode not supported: bad"),
    ("local", {"max-buffer-size": "4m"},
     "logger: max-buffer-size option is only supported with 'mode=non-blocking'"),
    ("json-file", {"mode": "non-blocking", "max-buffer-size": "zz"},
     "error parsing option max-buffer-size: invalid size: 'zz'"),
    ("json-file", {"cache-disabled": "x"}, "invalid value for option cache-disabled: x"),
    ("json-file", {"cache-foo": "1"}, "unknown log opt 'cache-foo' for json-file log driver"),
]

CREATE_ACCEPTS = [
    ("none", {"foo": "1", "mode": "bad"}),
    ("json-file", {"labels": "a", "labels-regex": "x", "env": "b", "env-regex": "^x",
                   "tag": "{{.Name}}", "mode": "non-blocking", "max-buffer-size": "4m",
                   "cache-disabled": "true", "cache-max-size": "x"}),
    ("local", {"max-file": "3", "max-size": "1m", "compress": "false",
               "cache-max-file": "2"}),
    ("journald", {"tag": "{{.ID}}", "labels": "a", "env": "b"}),
]


def test_option_names_checked_at_create_per_driver(dockerpy: Any, made: list[Any],
                                                   busybox_image: str) -> None:
    for driver, opts, message in CREATE_REFUSALS:
        got = api_error(lambda d=driver, o=opts: dockerpy.containers.create(
            busybox_image, "true", log_config=log_config(d, **o)))
        assert got == (400, message), (driver, opts)
    for driver, opts in CREATE_ACCEPTS:
        c = dockerpy.containers.create(busybox_image, "true",
                                       log_config=log_config(driver, **opts))
        made.append(c)
        assert c.attrs["HostConfig"]["LogConfig"] == {"Type": driver, "Config": opts}


START_REFUSALS = [
    ("json-file", {"max-size": "abc"}, "invalid size: 'abc'"),
    ("json-file", {"max-size": "0"}, "max-size must be a positive number"),
    ("json-file", {"max-size": "10k", "max-file": "0"}, "max-file cannot be less than 1"),
    ("json-file", {"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
    ("json-file", {"compress": "true"},
     "compress cannot be true when max-file is less than 2 or max-size is not set"),
    ("json-file", {"compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
    ("json-file", {"env-regex": "("}, "error parsing regexp: missing closing ): `(`"),
    ("json-file", {"tag": "{{.Nope}}"}, 'template: log-tag:1:2: executing "log-tag" at '
                                       "<.Nope>: can't evaluate field Nope in type "
                                       "*logger.Info"),
    ("json-file", {"tag": "{{.Bad"}, "template: log-tag:1: unclosed action"),
    ("local", {"max-size": "abc"}, "invalid value for max-size: abc: invalid size: 'abc'"),
    ("local", {"max-file": "1"}, "compression cannot be enabled when max file count is 1"),
    ("local", {"max-file": "-1", "compress": "false"}, "max file count cannot be less than 0"),
    ("local", {"compress": "yes"}, "error reading compress log option: strconv.ParseBool: "
                                   'parsing "yes": invalid syntax'),
]


def test_option_values_read_when_the_container_starts(dockerpy: Any, made: list[Any],
                                                      busybox_image: str) -> None:
    for driver, opts, message in START_REFUSALS:
        c = dockerpy.containers.create(busybox_image, "true",
                                       log_config=log_config(driver, **opts))
        made.append(c)
        expected = f"failed to initialize logging driver: {message}"
        assert api_error(c.start) == (500, expected), (driver, opts)
        c.reload()
        state = c.attrs["State"]
        assert (state["Status"], state["ExitCode"], state["Error"]) == \
            ("created", 128, expected)


def test_max_file_without_max_size_accepted(docker: Any, ctr: Callable[..., str]) -> None:
    # dockerd's default configuration accepts it (json-file keeps one unlimited file).
    name = ctr()
    out = docker("run", "--name", name, "--log-opt", "max-file=3", "busybox", "echo", "hi")
    assert out.stdout == "hi\n"
    assert docker("logs", name).stdout == "hi\n"
    assert json.loads(docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", name).stdout) \
        == {"Type": "json-file", "Config": {"max-file": "3"}}


# --- none -----------------------------------------------------------------------------------

async def test_none_records_nothing_and_refuses_reads(
        daemon: Daemon, dockerpy: Any, made: list[Any], docker: Any,
        aiodocker_client: Callable[[], Any], busybox_image: str) -> None:
    import aiodocker

    c = dockerpy.containers.run(busybox_image, ["sh", "-c", "echo out; echo err >&2; sleep 300"],
                                detach=True, log_config=log_config("none"))
    made.append(c)
    c.reload()
    assert c.attrs["LogPath"] == ""
    assert api_error(lambda: c.logs()) == (501, "configured logging driver does not support "
                                                "reading")
    r = docker("logs", c.id, check=False)
    assert r.returncode == 1
    assert r.stderr == ("Error response from daemon: configured logging driver does not "
                        "support reading\n")
    with pytest.raises(aiodocker.DockerError) as e:
        await aiodocker_client().containers.container(c.id).log(stdout=True)
    assert e.value.status == 501
    # conmon wrote no log file
    assert log_files(daemon, c.id) == []

    # attach with logs=1: dockerd has no `none` logger to replay and says so on stdout,
    # then ends the attach (with or without stream)
    expected = (b"Error attaching: failed to get logging factory: logger: no log driver "
                b"named 'none' is registered: error looking up logging plugin none: plugin "
                b'"none" not found\n')
    assert c.attach(stdout=True, stderr=True, logs=True, stream=False) == expected
    assert b"".join(c.attach(stdout=True, stderr=True, logs=True, stream=True)) == expected


# --- local and json-file files ---------------------------------------------------------------

# ~23 MB of numbered 1 kB lines: more than local's default 20 MB
BIG_OUTPUT = ('awk \'BEGIN{s=sprintf("%1000s",""); gsub(/ /,"a",s); '
              'for(i=0;i<22000;i++) print i s}\'; sleep 300')


def numbers(output: bytes) -> list[int]:
    return [int(line.split(b"a", 1)[0]) for line in output.splitlines()]


def test_local_rotates_at_20mb_and_compresses(daemon: Daemon, dockerpy: Any, made: list[Any],
                                              busybox_image: str) -> None:
    c = dockerpy.containers.run(busybox_image, ["sh", "-c", BIG_OUTPUT], detach=True,
                                log_config=log_config("local"))
    made.append(c)
    c.reload()
    assert c.attrs["LogPath"] == ""
    assert c.attrs["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {}}
    wait_for(lambda: log_files(daemon, c.id) == ["container.log", "container.log.1.gz"],
             "one rotation at 20 MB, compressed")
    wait_for(lambda: c.logs(tail=1).startswith(b"21999"), "the last line")
    # not rotated before 20 MiB (after: the daemon rotates once it sees the size, and a
    # burst may run past it)
    with open(state_dir(daemon, c.id) / "container.log.1.gz", "rb") as f:
        rotated = gzip.decompress(f.read())
    assert len(rotated) >= 20 * 1024 * 1024
    assert numbers(c.logs()) == list(range(22000))  # read through the compressed file
    assert numbers(c.logs(tail=3)) == [21997, 21998, 21999]


def test_json_file_compress_keeps_max_file(daemon: Daemon, dockerpy: Any, made: list[Any],
                                           busybox_image: str) -> None:
    # paced: the daemon rotates after the fact, a burst would overshoot max-size
    script = ("i=0; while [ $i -lt 1500 ]; do echo line $i; i=$((i+1)); usleep 300; done; "
              "sleep 300")
    c = dockerpy.containers.run(busybox_image, ["sh", "-c", script], detach=True,
                                log_config=log_config("json-file", **{
                                    "max-size": "10k", "max-file": "3", "compress": "true"}))
    made.append(c)
    c.reload()
    assert c.attrs["LogPath"].endswith("/container.log")
    wait_for(lambda: c.logs(tail=1) == b"line 1499\n", "the last line")
    wait_for(lambda: log_files(daemon, c.id) == ["container.log", "container.log.1.gz",
                                                 "container.log.2.gz"],
             "two rotated files, compressed")
    got = [int(line.split()[1]) for line in c.logs().splitlines()]
    assert got[0] > 0, "the oldest lines were rotated away"
    assert got == list(range(got[0], 1500)), "a gap or a reordering across the rotations"


# --- the daemon's own log-driver / log-opts --------------------------------------------------

def _daemon_config(tmp: Path, config: dict[str, Any]) -> Daemon:
    (tmp / "daemon.json").write_text(json.dumps({"bridge": "none", **config}) + "\n")
    return Daemon(tmp)


def _run_to_exit(d: Daemon) -> tuple[int, str]:
    argv = [sys.executable, "-m", "dockerd_py", "-H", d.host, "--data-root", str(d.data_root),
            "--exec-root", str(d.exec_root), "--pidfile", str(d.pidfile),
            "--config-file", str(d.config_file)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    try:
        r = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                           timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("the daemon was expected to refuse to start, but ran", pytrace=False)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dpg-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize(("config", "message"), [
    ({"log-opts": {"foo": "1"}}, "unknown log opt 'foo' for json-file log driver"),
    ({"log-driver": "local", "log-opts": {"labels": "a"}},
     "unknown log opt 'labels' for log driver local"),
    ({"log-opts": {"mode": "bad"}}, "logger: logging mode not supported: bad"),
    ({"log-driver": "nosuch", "log-opts": {"max-size": "1m"}},
     'error looking up logging plugin nosuch: plugin "nosuch" not found'),
])
def test_daemon_log_opts_checked_at_start(scratch: Path, config: dict[str, Any],
                                          message: str) -> None:
    code, output = _run_to_exit(_daemon_config(scratch, config))
    assert code == 1, output
    assert f"failed to start daemon: failed to set log opts: {message}" in output
    assert "Traceback" not in output


def test_daemon_log_defaults_applied_as_dockerd(scratch: Path, busybox_tar: Path) -> None:
    import docker as docker_sdk

    # dockerd starts with these (values are read when a container starts, and a driver
    # without options is only met at create)
    d = _daemon_config(scratch, {"log-driver": "local",
                                 "log-opts": {"max-file": "3", "cache-disabled": "true"}})
    d.start()
    client = docker_sdk.DockerClient(base_url=d.host)
    try:
        subprocess.run([DOCKER_CLI, "import", "-c", 'CMD ["sh"]', str(busybox_tar),
                        "busybox:latest"], env=d.cli_env(), check=True, capture_output=True)
        assert client.info()["LoggingDriver"] == "local"
        # no driver named: the daemon's, with its options
        c = client.containers.create("busybox", "true", network_mode="none")
        assert c.attrs["HostConfig"]["LogConfig"] == \
            {"Type": "local", "Config": {"max-file": "3", "cache-disabled": "true"}}
        # another driver: only the daemon's cache-* options follow
        c = client.containers.create("busybox", "true", network_mode="none",
                                     log_config=log_config("json-file"))
        assert c.attrs["HostConfig"]["LogConfig"] == \
            {"Type": "json-file", "Config": {"cache-disabled": "true"}}
        out = subprocess.run([DOCKER_CLI, "run", "--rm", "--network", "none", "busybox",
                              "echo", "hi"], env=d.cli_env(), capture_output=True, text=True)
        assert (out.returncode, out.stdout) == (0, "hi\n"), out.stderr
    finally:
        with contextlib.suppress(Exception):
            for c in client.containers.list(all=True):
                c.remove(force=True)
        client.close()
        d.stop()

    # a default driver this daemon lacks: it starts, and every create naming none fails
    (scratch / "daemon.json").write_text(json.dumps({"bridge": "none",
                                                     "log-driver": "syslog"}) + "\n")
    d.start()
    client = docker_sdk.DockerClient(base_url=d.host)
    try:
        assert api_error(lambda: client.containers.create("busybox", "true")) == \
            (400, 'error looking up logging plugin syslog: plugin "syslog" not found')
    finally:
        client.close()
        d.stop()


# --- journald --------------------------------------------------------------------------------

def _host_journald() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect("/run/systemd/journal/socket")
        except OSError:
            return False
    return True


def test_journald_refused_at_start_on_a_host_without_it(dockerpy: Any, made: list[Any],
                                                         busybox_image: str) -> None:
    if _host_journald():
        pytest.skip("this host runs systemd-journald")
    c = dockerpy.containers.create(busybox_image, "true", log_config=log_config("journald"))
    made.append(c)
    assert api_error(c.start) == (500, "failed to initialize logging driver: journald is not "
                                       "enabled on this host")


class JournalHost:
    """A systemd-journald and a dockerd-py sharing a private mount namespace, where
    /run/systemd, /run/log and /var/log/journal are tmpfs of their own. journald holds
    the namespace; the daemon is (re)started in it with nsenter."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.daemon = _daemon_config(tmp, {})
        self.journald: subprocess.Popen[bytes] | None = None
        self.env = self.daemon.cli_env()

    def start(self) -> None:
        script = ("set -e; mount -t tmpfs tmpfs /run/systemd; mkdir /run/systemd/journal; "
                  "mount -t tmpfs tmpfs /run/log; "
                  "if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi; "
                  f"exec {JOURNALD}")
        with open(self.tmp / "journald.log", "wb") as log:
            self.journald = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=die_with_test_run)
        sock = f"/proc/{self.journald.pid}/root/run/systemd/journal/socket"
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(sock):
            if self.journald.poll() is not None or time.monotonic() > deadline:
                pytest.fail("systemd-journald did not start:\n"
                            + (self.tmp / "journald.log").read_text(errors="replace"),
                            pytrace=False)
            time.sleep(0.05)
        self.start_daemon()

    def start_daemon(self) -> None:
        assert self.journald is not None
        d = self.daemon
        argv = ["nsenter", f"--target={self.journald.pid}", "--mount", "--",
                sys.executable, "-m", "dockerd_py", "-H", d.host, "--log-level", "debug",
                "--data-root", str(d.data_root), "--exec-root", str(d.exec_root),
                "--pidfile", str(d.pidfile), "--config-file", str(d.config_file)]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with open(d.log_path, "ab") as log:
            d.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=log, start_new_session=True,
                                      preexec_fn=die_with_test_run)
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(d.sock):
            if d.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"daemon did not start:\n{d.log_tail()}", pytrace=False)
            time.sleep(0.05)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([DOCKER_CLI, *args], env=self.env, capture_output=True, text=True,
                           timeout=120)
        if check and r.returncode:
            pytest.fail(f"docker {' '.join(args)}: {r.stdout}{r.stderr}\n"
                        f"{self.daemon.log_tail()}", pytrace=False)
        return r

    def journal(self, *match: str) -> list[dict[str, Any]]:
        """The namespace's journal entries matching, as journalctl's JSON."""
        assert self.journald is not None
        r = subprocess.run(["nsenter", f"--target={self.journald.pid}", "--mount", "--",
                            "journalctl", "--no-pager", "-o", "json", *match],
                           capture_output=True, text=True, check=True, timeout=60)
        return [json.loads(line) for line in r.stdout.splitlines()]

    def stop(self) -> None:
        # The containers go with the daemon's help: a test may have left it stopped.
        with contextlib.suppress(Exception, pytest.fail.Exception):
            if self.daemon.proc is None or self.daemon.proc.poll() is not None:
                self.start_daemon()
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
        self.daemon.stop()
        if self.journald is not None and self.journald.poll() is None:
            self.journald.send_signal(signal.SIGTERM)
            try:
                self.journald.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.journald.kill()
                self.journald.wait()


@pytest.fixture
def journal_host(scratch: Path, busybox_tar: Path) -> Iterator[JournalHost]:
    for tool in ("unshare", "nsenter", "journalctl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if not os.path.exists(JOURNALD) or not os.path.isdir("/run/systemd"):
        pytest.skip("no systemd-journald on this host")
    host = JournalHost(scratch)
    try:
        host.start()
        host.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield host
    finally:
        host.stop()


def test_journald_writes_the_journal_and_reads_it_back(journal_host: JournalHost) -> None:
    import docker as docker_sdk

    h = journal_host
    name = f"jd-{uuid.uuid4().hex[:8]}"
    out = h.docker("run", "--name", name, "--network", "none", "--log-driver", "journald",
                   "busybox", "sh", "-c",  # paced: two pipes, no order between them
                   "echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2")
    assert out.stdout == "out1\nout2\n" and out.stderr == "err1\n"
    cid = h.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()

    # the entries dockerd's journald driver writes, with the same fields
    entries = h.journal(f"CONTAINER_NAME={name}")
    assert sorted((e["PRIORITY"], e["MESSAGE"].rstrip("\n")) for e in entries) == \
        [("3", "err1"), ("6", "out1"), ("6", "out2")]
    for e in entries:
        assert (e["CONTAINER_ID"], e["CONTAINER_ID_FULL"]) == (cid[:12], cid)
        assert e["CONTAINER_TAG"] == e["SYSLOG_IDENTIFIER"] == cid[:12]  # tag {{.ID}}

    # read back from the journal: streams apart, tail, timestamps
    client = docker_sdk.DockerClient(base_url=h.daemon.host)
    try:
        c = client.containers.get(name)
        assert c.logs(stdout=True, stderr=False) == b"out1\nout2\n"
        assert c.logs(stdout=False, stderr=True) == b"err1\n"
        assert c.logs(tail=1) == b"out2\n"
        stamped = c.logs(timestamps=True, stdout=True, stderr=False).splitlines()
        assert [line.split(b" ", 1)[1] for line in stamped] == [b"out1", b"out2"]
        assert all(line.split(b" ", 1)[0].endswith(b"Z") for line in stamped)
        assert c.attrs["LogPath"] == ""
    finally:
        client.close()

    # a tag of the user's
    tagged = f"jt-{uuid.uuid4().hex[:8]}"
    h.docker("run", "--name", tagged, "--network", "none", "--log-driver", "journald",
             "--log-opt", "tag={{.Name}}/{{.ImageName}}", "busybox", "echo", "tagged")
    entry, = h.journal(f"CONTAINER_NAME={tagged}")
    assert entry["SYSLOG_IDENTIFIER"] == entry["CONTAINER_TAG"] == f"{tagged}/busybox"
    assert entry["MESSAGE"].rstrip("\n") == "tagged"


def test_journald_follow_and_daemon_restart(journal_host: JournalHost) -> None:
    import docker as docker_sdk

    h = journal_host
    name = f"jf-{uuid.uuid4().hex[:8]}"
    flag = h.tmp / "go"
    # waits for a file of ours, then prints two more lines: written while the daemon is down
    h.docker("run", "-d", "--name", name, "--network", "none", "--log-driver", "journald",
             "-v", f"{h.tmp}:/ctl", "busybox", "sh", "-c",
             "echo first; while [ ! -e /ctl/go ]; do sleep 0.05; done; echo second; "
             "while [ ! -e /ctl/end ]; do sleep 0.05; done; echo last")
    h.daemon.stop()
    flag.touch()
    wait_for(lambda: any(e["MESSAGE"].startswith("second")
                         for e in h.journal(f"CONTAINER_NAME={name}")),
             "conmon writing while the daemon is down")
    h.start_daemon()
    client = docker_sdk.DockerClient(base_url=h.daemon.host)
    try:
        c = client.containers.get(name)
        stream = c.logs(stream=True, follow=True)
        got = [next(stream)]
        got.append(next(stream))
        (h.tmp / "end").touch()
        got += list(stream)  # ends by itself when the container exits
        assert b"".join(got) == b"first\nsecond\nlast\n"
    finally:
        client.close()
