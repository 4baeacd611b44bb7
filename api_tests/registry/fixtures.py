"""Registries for the tests: Debian's docker-registry (the reference implementation,
/usr/bin/docker-registry) on random ports. A plugin of the root conftest, so that each
session fixture has one definition (importing fixtures into another conftest would start
a second registry on the same directory).

Fixtures:
  plain_registry    (session)  plain HTTP on 127.0.0.1 (always insecure for dockerd)
  basic_registry    (session)  htpasswd Basic auth on 127.0.0.1; user/password attributes
  token_registry    (session)  token auth behind tests/tokenserver.py on 127.0.0.1
  lo_address        (session)  an address outside 127/8 added to `lo` (removed afterwards)
  tls_registry      (session)  TLS on lo_address; certs_d puts its CA in certs.d/<host:port>/
  mtls_registry     (session)  TLS on lo_address that requires a client certificate
  offnet_plain_registry (session) plain HTTP on lo_address: not insecure unless configured
  layered_image                a local 3-layer image (busybox + two committed layers)
  registry_daemon_config       write(dict) merges keys into daemon.json and reloads (SIGHUP)
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..lifetime import die_with_test_run
from . import certs

REGISTRY_BIN = "/usr/bin/docker-registry"
CERTS_D = Path("/etc/docker/certs.d")
HERE = Path(__file__).resolve().parent
START_TIMEOUT = 20.0



def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_tcp(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{host}:{port}: server exited with {proc.returncode}\n{log.read_text()}")
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{host}:{port}: not listening within {START_TIMEOUT}s")
            time.sleep(0.05)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{url}: server exited with {proc.returncode}\n{log.read_text()}")
        try:
            urllib.request.urlopen(url, timeout=2, context=ctx if url.startswith("https") else None)
            return
        except urllib.error.HTTPError:
            return  # 401: up and asking for credentials
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{url}: no answer within {START_TIMEOUT}s\n{log.read_text()}")
            time.sleep(0.05)


class Registry:
    """One docker-registry process; its storage survives stop()/start()."""

    def __init__(self, root: Path, host: str = "127.0.0.1", *, tls: tuple[Path, Path] | None = None,
                 auth: dict[str, Any] | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ip = host
        self.port = free_port(host)
        self.host = f"{host}:{self.port}"
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.config = root / "config.yml"
        self.log = root / "registry.log"
        http: dict[str, Any] = {"addr": self.host, "secret": "dockerd-py-tests"}
        if tls:
            http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        doc: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(root / "data")},
                        "delete": {"enabled": True}},
            "http": http,
        }
        if auth:
            doc["auth"] = auth
        self.config.write_text(json.dumps(doc))  # JSON is YAML
        self.proc: subprocess.Popen[bytes] | None = None
        self.client_auth = False

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config)],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         preexec_fn=die_with_test_run)
        if self.client_auth:  # no HTTP without a client certificate: wait for the port
            _wait_tcp(self.ip, self.port, self.proc, self.log)
        else:
            _wait_http(self.url + "/v2/", self.proc, self.log)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def registry_root(session_dir: Path) -> Path:
    path = session_dir / "registries"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def plain_registry(registry_root: Path) -> Iterator[Registry]:
    reg = Registry(registry_root / "plain")
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def basic_registry(registry_root: Path) -> Iterator[Registry]:
    root = registry_root / "basic"
    root.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # glibc's crypt(3) makes bcrypt hashes; no bcrypt module is installed
    # Go's bcrypt reads $2a$; glibc's crypt writes the same algorithm as $2b$.
    hashed = crypt.crypt("s3cret-pw", crypt.mksalt(crypt.METHOD_BLOWFISH))  # type: ignore[attr-defined]
    (root / "htpasswd").write_text(f"alice:{hashed.replace('$2b$', '$2a$', 1)}\n")
    htpasswd = {"realm": "basic-realm", "path": str(root / "htpasswd")}
    reg = Registry(root, auth={"htpasswd": htpasswd})
    reg.user, reg.password = "alice", "s3cret-pw"  # type: ignore[attr-defined]
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(registry_root: Path) -> Iterator[Registry]:
    root = registry_root / "token"
    root.mkdir()
    crt, key = certs.make_signing_pair(root)
    port = free_port()
    log = root / "tokenserver.log"
    with open(log, "ab") as out:
        server = subprocess.Popen([sys.executable, str(HERE / "tokenserver.py"), str(port),
                                   str(key), str(crt), "dpy-issuer", "bob", "t0ken-pw", str(log)],
                                  stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                  preexec_fn=die_with_test_run)
    _wait_http(f"http://127.0.0.1:{port}/token", server, log)
    reg = Registry(root, auth={"token": {"realm": f"http://127.0.0.1:{port}/token",
                                         "service": "dpy-registry", "issuer": "dpy-issuer",
                                         "rootcertbundle": str(crt)}})
    reg.user, reg.password = "bob", "t0ken-pw"  # type: ignore[attr-defined]
    reg.start()
    yield reg
    reg.stop()
    server.terminate()
    server.wait()


@pytest.fixture(scope="session")
def lo_address() -> Iterator[str]:
    """198.18.0.0/15 (benchmarking, never routed) on the loopback interface."""
    for _ in range(20):
        ip = f"198.18.{random.randint(1, 254)}.{random.randint(1, 254)}"
        shown = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
        if f" {ip}/" in shown:
            continue
        added = subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"],
                               capture_output=True, text=True)
        if added.returncode == 0:
            break
    else:
        pytest.skip("cannot add an address to lo")
    yield ip
    subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], capture_output=True)


@pytest.fixture(scope="session")
def tls_registry(registry_root: Path, lo_address: str) -> Iterator[Registry]:
    root = registry_root / "tls"
    root.mkdir()
    ca_crt, ca_key = certs.make_ca(root)
    tls = certs.make_server_cert(root, ca_crt, ca_key, lo_address)
    reg = Registry(root, lo_address, tls=tls)
    reg.ca = ca_crt  # type: ignore[attr-defined]
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def mtls_registry(registry_root: Path, lo_address: str) -> Iterator[Registry]:
    """TLS on lo_address that also demands a client certificate signed by its CA."""
    root = registry_root / "mtls"
    root.mkdir()
    ca_crt, ca_key = certs.make_ca(root)
    tls = certs.make_server_cert(root, ca_crt, ca_key, lo_address)
    client = root / "client"
    client.mkdir()
    reg = Registry(root, lo_address, tls=tls)
    doc = json.loads(reg.config.read_text())
    doc["http"]["tls"]["clientcas"] = [str(ca_crt)]
    reg.config.write_text(json.dumps(doc))
    reg.client_auth = True
    reg.ca = ca_crt  # type: ignore[attr-defined]
    reg.client = certs.make_server_cert(client, ca_crt, ca_key, lo_address)  # type: ignore[attr-defined]
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture
def certs_d(tls_registry: Registry) -> Iterator[Path]:
    """/etc/docker/certs.d/<host:port>/ca.crt for the TLS registry, removed after the test."""
    directory = CERTS_D / tls_registry.host
    directory.mkdir(parents=True)
    shutil.copy(tls_registry.ca, directory / "ca.crt")  # type: ignore[attr-defined]
    yield directory
    shutil.rmtree(directory)


@pytest.fixture(scope="session")
def offnet_plain_registry(registry_root: Path, lo_address: str) -> Iterator[Registry]:
    reg = Registry(registry_root / "offnet", lo_address)
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture
def layered_image(docker: Callable[..., Any], busybox_image: str,
                  unique_name: Callable[..., str]) -> Iterator[str]:
    """A local image of three layers: busybox, then two committed ones."""
    name = unique_name("layered")
    base = busybox_image
    for i in (1, 2):
        ctr = unique_name("mk")
        docker("run", "--name", ctr, "--network", "none", base, "sh", "-c",
               f"mkdir -p /data && head -c {20000 * i} /dev/urandom > /data/f{i}")
        base = docker("commit", ctr).stdout.strip()  # untagged: only the last gets a name
        docker("rm", ctr)
    docker("tag", base, f"{name}:latest")
    yield f"{name}:latest"
    docker("rmi", "-f", f"{name}:latest", check=False)


_REGISTRY_DEFAULTS: dict[str, Any] = {"insecure-registries": [], "registry-mirrors": [],
                                      "registry-hosts": {},
                                      "max-concurrent-downloads": 3,
                                      "max-concurrent-uploads": 5}


@pytest.fixture
def registry_daemon_config(daemon: Any) -> Iterator[Callable[[dict[str, Any]], None]]:
    """write(keys): merge keys into daemon.json and SIGHUP the daemon; restored afterwards."""
    original = daemon.config_file.read_text()

    def reload(text: str) -> None:
        before = daemon.log_path.read_text(errors="replace").count("Reloaded configuration")
        daemon.config_file.write_text(text)
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while daemon.log_path.read_text(errors="replace").count("Reloaded configuration") <= before:
            if time.monotonic() > deadline:
                pytest.fail("daemon did not reload its configuration")
            time.sleep(0.05)

    written: set[str] = set()

    def write(keys: dict[str, Any]) -> None:
        doc = json.loads(original or "{}")
        doc.update(keys)
        written.update(keys)
        reload(json.dumps(doc))

    yield write
    if daemon.config_file.read_text() != original:
        # A reload keeps a key the file no longer names (as dockerd's does): put the
        # defaults back explicitly before the original file returns.
        doc = json.loads(original or "{}")
        reset = {k: v for k, v in _REGISTRY_DEFAULTS.items() if k in written and k not in doc}
        if reset:
            reload(json.dumps({**doc, **reset}))
        reload(original)
