"""Test harness: a real dockerd-py on a private socket, and the clients that talk to it.

Fixtures:
  daemon            (session)  Daemon — the running daemon; restart()/kill9_and_restart()
  docker            (session)  run(*args, input=None, check=True, env=None, timeout=120)
                               -> CompletedProcess[str], the stock CLI against the daemon
  dockerpy                     docker.DockerClient on the daemon's socket
  aiodocker_client  (async)    make() -> aiodocker.Docker; every client made is closed after
  busybox_tar       (session)  Path of the offline busybox rootfs tarball
  busybox_image                "busybox:latest", imported into the daemon when missing
  unique_name                  make(prefix="t") -> a name no other test uses
  ctr                          make(prefix="c") -> a container name, `docker rm -f`-ed after
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

# gRPC's fork handlers abort a child forked beside its threads (every process the tests start
# has a preexec_fn, so Python forks rather than vforks): off before any test imports grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import pytest

from .lifetime import die_with_test_run

pytest_plugins = ("api_tests.registry.fixtures",)

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER_CLI = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
LOG_TAIL_LINES = 60


def _ping(sock_path: str) -> bool:
    """GET /_ping over HTTP/1.0, so the daemon closes the connection after its answer."""
    reply = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect(sock_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            while chunk := s.recv(65536):
                reply += chunk
    except OSError:
        return False
    return reply.split(b" ", 2)[1:2] == [b"200"] and reply.endswith(b"\r\n\r\nOK")


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below root, deepest first (mountinfo field 5, octal-escaped)."""
    prefix = str(root).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def network_config(tmp: Path) -> dict[str, Any]:
    """A default bridge and address pools of the daemon's own (derived from its directory),
    so that it coexists with Docker's dockerd and with other test daemons on this host."""
    h = int(uuid.uuid5(uuid.NAMESPACE_URL, str(tmp)).hex[:8], 16)
    return {"bridge": f"dpy{h & 0xFFFFFF:06x}",
            "bip": f"10.{64 + h % 64}.{(h >> 6) % 256}.1/24",
            "default-address-pools": [{"base": f"10.{128 + h % 120}.{(h >> 7) % 16 * 16}.0/20",
                                       "size": 24}]}


def network_leftovers(d: Daemon, networks: list[dict[str, Any]]) -> list[str]:
    """Interfaces, namespaces and NAT rules of the daemon's networks still on the host
    after it stopped (netavark's shared top-level chains belong to no one daemon)."""
    found = []
    for n in networks:
        bridge = (n.get("Options") or {}).get("com.docker.network.bridge.name") \
            or f"br-{n['Id'][:12]}"
        if n.get("Driver") == "bridge" and os.path.exists(f"/sys/class/net/{bridge}"):
            found.append(f"interface {bridge} of network {n['Name']}")
    subnets = [c["Subnet"] for n in networks for c in (n.get("IPAM") or {}).get("Config") or []]
    rules = "".join(subprocess.run([tool], capture_output=True, text=True).stdout
                    for tool in ("iptables-save", "ip6tables-save"))
    isolation = "DPY-ISOLATION-"  # the daemon's own chains, named after its exec root
    tag = hashlib.sha256(str(d.exec_root).encode()).hexdigest()[:8].upper()
    # netavark's chains of a network: named after the hash of its name (here, its ID).
    chains = {hashlib.sha512(n["Id"].encode()).hexdigest()[:13].upper() for n in networks}
    for line in rules.splitlines():
        if any(f" {s} " in line + " " or f"{s}:" in line for s in subnets) \
                or any(n["Id"] in line for n in networks) \
                or any(f"NETAVARK-{c} " in line + " " or f"NETAVARK-DN-{c} " in line + " "
                       for c in chains) \
                or (isolation in line and line.rstrip().endswith(tag)):
            found.append(f"firewall rule: {line}")
    netns_dir = d.exec_root / "netns"
    if netns_dir.is_dir():
        found += [f"network namespace {p}" for p in netns_dir.iterdir()]
    return found


class Daemon:
    """A dockerd-py subprocess on roots under one short temporary directory."""

    def __init__(self, tmp: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        self.extra_args = extra_args  # more dockerd flags (another -H, ...)
        self.sock = str(tmp / "docker.sock")  # AF_UNIX paths must stay under 108 bytes
        self.host = f"unix://{self.sock}"
        self.data_root = tmp / "root"
        self.exec_root = tmp / "exec"
        self.pidfile = tmp / "dockerd.pid"
        self.config_file = tmp / "daemon.json"
        self.log_path = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if not self.config_file.exists():
            self.config_file.write_text(json.dumps(network_config(tmp)) + "\n")

    def cli_env(self) -> dict[str, str]:
        """Environment for the docker CLI: this daemon, an empty config (none of the user's)."""
        config_dir = self.tmp / "cli"
        config_dir.mkdir(exist_ok=True)
        leaky = ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
        env = {k: v for k, v in os.environ.items() if k not in leaky}
        env.update(DOCKER_HOST=self.host, DOCKER_CONFIG=str(config_dir), DOCKER_CLI_HINTS="false")
        return env

    def start(self) -> None:
        argv = [sys.executable, "-m", "dockerd_py", "-H", self.host, "--log-level", "debug"]
        argv += ["--data-root", str(self.data_root), "--exec-root", str(self.exec_root)]
        argv += ["--pidfile", str(self.pidfile), "--config-file", str(self.config_file)]
        argv += self.extra_args
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: {shlex.join(argv)}\n".encode())
            log.flush()
            # A session of its own: a ^C to pytest must not reach the daemon before teardown does.
            self.proc = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True, preexec_fn=die_with_test_run,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(self.sock):
            if self.proc.poll() is not None:
                self._fail(f"daemon exited with {self.proc.returncode} during start")
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                self._fail(f"daemon did not answer /_ping within {START_TIMEOUT:.0f}s")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> bool:
        """Signals the daemon and waits; False if it had to be SIGKILLed after STOP_TIMEOUT."""
        if self.proc is None or self.proc.poll() is not None:
            return True
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
            return True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False

    def restart(self) -> None:
        if not self.stop():
            self._fail(f"daemon ignored SIGTERM for {STOP_TIMEOUT:.0f}s and was SIGKILLed")
        self.start()

    def kill9_and_restart(self) -> None:
        self.stop(signal.SIGKILL)
        self.start()

    def log_tail(self, n: int = LOG_TAIL_LINES) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no daemon log)"
        return "\n".join(lines[-n:])

    def _fail(self, message: str) -> NoReturn:
        pytest.fail(f"{message}\n--- daemon log ---\n{self.log_tail()}", pytrace=False)


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    """A short directory under /tmp for the session: sockets, roots, logs, tarballs."""
    path = Path(tempfile.mkdtemp(prefix="dpy-", dir="/tmp"))
    yield path
    if not os.environ.get("DPY_KEEP_TMP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def daemon(session_dir: Path) -> Iterator[Daemon]:
    d = Daemon(session_dir)
    d.start()
    yield d
    stop_and_check(d, session_dir)


def stop_and_check(d: Daemon, root: Path) -> None:
    """Teardown of a test daemon: remove its containers, stop it, and fail when it had
    died, ignored SIGTERM, or left mounts under root or networking on the host."""
    problems = []
    networks: list[dict[str, Any]] = []
    if (code := d.proc.poll() if d.proc else None) is not None:
        problems.append(f"daemon had exited with {code} before teardown")
    else:
        _remove_all_containers(d)
        networks = _networks(d)
    if not d.stop():
        problems.append(f"daemon ignored SIGTERM for {STOP_TIMEOUT:.0f}s and was SIGKILLed")
    leftovers = _mounts_under(root)
    for point in leftovers:
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    if leftovers:
        problems.append("mounts left behind (lazily unmounted):\n  " + "\n  ".join(leftovers))
    if net_leftovers := network_leftovers(d, networks):
        problems.append("networking left behind:\n  " + "\n  ".join(net_leftovers))
    if problems:
        d._fail("\n".join(problems))


def _networks(d: Daemon) -> list[dict[str, Any]]:
    """The daemon's networks as `docker network inspect` shows them."""
    env = d.cli_env()
    try:
        ids = subprocess.run([DOCKER_CLI, "network", "ls", "-q", "--no-trunc"], env=env,
                             capture_output=True, text=True, timeout=60).stdout.split()
        if not ids:
            return []
        out = subprocess.run([DOCKER_CLI, "network", "inspect", *ids], env=env,
                             capture_output=True, text=True, timeout=60).stdout
        return list(json.loads(out or "[]"))
    except (subprocess.TimeoutExpired, ValueError):
        return []


def _remove_all_containers(d: Daemon) -> None:
    """Containers a failed test left behind keep running (live-restore) and keep their mounts."""
    env = d.cli_env()
    try:
        ps = subprocess.run([DOCKER_CLI, "ps", "-aq"], env=env, capture_output=True, timeout=60)
        if ids := ps.stdout.decode().split():
            rm = [DOCKER_CLI, "rm", "-fv", *ids]
            subprocess.run(rm, env=env, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        pass  # the mount check below reports what this leaves


DockerRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def docker(daemon: Daemon) -> DockerRun:
    base_env = daemon.cli_env()

    def run(
        *args: object,
        input: str | bytes | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        __tracebackhide__ = True  # failures point at the test's line, not at this helper
        argv = [DOCKER_CLI, *map(str, args)]
        data = input.encode() if isinstance(input, str) else input
        full_env = {**base_env, **(env or {})}
        try:
            raw = subprocess.run(
                argv, input=data, capture_output=True, env=full_env, timeout=timeout
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"{shlex.join(argv)}: no exit after {timeout}s\n"
                f"--- daemon log ---\n{daemon.log_tail()}"
            ) from e
        out, err = raw.stdout.decode(errors="replace"), raw.stderr.decode(errors="replace")
        result = subprocess.CompletedProcess(argv, raw.returncode, out, err)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{shlex.join(argv)} exited with {result.returncode}\n"
                f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
                f"--- daemon log ---\n{daemon.log_tail()}"
            )
        return result

    return run


@pytest.fixture
def dockerpy(daemon: Daemon) -> Iterator[Any]:
    import docker as docker_sdk  # the module; `docker` is the CLI fixture here

    client = docker_sdk.DockerClient(base_url=daemon.host)
    yield client
    client.close()


@pytest.fixture
async def aiodocker_client(daemon: Daemon) -> AsyncIterator[Callable[[], Any]]:
    """make() -> aiodocker.Docker, created inside the test's event loop."""
    import aiodocker

    clients: list[Any] = []

    def make() -> Any:
        clients.append(aiodocker.Docker(url=daemon.host))
        return clients[-1]

    yield make
    for client in clients:
        await client.close()


@pytest.fixture(scope="session")
def busybox_tar(session_dir: Path) -> Path:
    out = session_dir / "busybox-rootfs.tar"
    script = REPO_ROOT / "contrib" / "make-busybox-rootfs.sh"
    proc = subprocess.run([str(script), str(out)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{script.name} failed:\n{proc.stderr}", pytrace=False)
    return out


@pytest.fixture
def busybox_image(docker: DockerRun, busybox_tar: Path) -> str:
    """busybox:latest in the daemon; imported again only when a test removed it."""
    if docker("image", "inspect", "busybox:latest", check=False).returncode != 0:
        docker("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    return "busybox:latest"


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[..., str]:
    """make(prefix="t") -> "<prefix>-<test name>-<8 hex>", valid as image and container name."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{slug}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def ctr(docker: DockerRun, unique_name: Callable[..., str],
        busybox_image: str) -> Iterator[Callable[..., str]]:
    """make(prefix="c") -> a unique container name, removed (rm -f) after the test."""
    made: list[str] = []

    def make(prefix: str = "c") -> str:
        made.append(unique_name(prefix))
        return made[-1]

    yield make
    if made:
        docker("rm", "-f", *made, check=False)


@pytest.fixture
def make_context(tmp_path: Path) -> Callable[..., Path]:
    """make({relative path: content}) -> a fresh build context directory."""
    count = 0

    def make(files: dict[str, str | bytes], name: str = "") -> Path:
        nonlocal count
        count += 1
        root = tmp_path / (name or f"ctx{count}")
        root.mkdir()
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        return root
    return make
