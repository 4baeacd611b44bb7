"""Client strings never become scripts (issue 14: "No shell-like scripts built from client
strings").

Every client-controlled field that reaches `ip -batch`, `iptables-restore`, netavark
(and through it aardvark-dns' line-based config), conmon's or runc's command line, or a
file another program parses (the container's /etc/hosts and /etc/resolv.conf) is fed
newline, tab, NUL, quotes and spaces through the real API. Either the request is refused
with a 4xx and nothing is applied, or, where dockerd accepts the value, it arrives as one
literal value. The crafted payloads would each leave a mark on the host if they got
through (a link, a firewall chain); the host is checked for it after every attempt, and
the mark removed if a broken daemon made it.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DOCKER_CLI, REPO_ROOT, Daemon, DockerRun, network_leftovers

API = "/v1.50"
HOSTILE = {"newline": "\n", "tab": "\t", "nul": "\0", "dquote": '"', "squote": "'",
           "space": " "}
SPLITTING = {k: v for k, v in HOSTILE.items() if k in ("newline", "tab", "nul", "space")}


# --------------------------------------------------------------------------- helpers

class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("docker", timeout=120)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def api(d: Daemon, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on the daemon's socket: (status, decoded JSON body or None)."""
    conn = _Unix(d.sock)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, API + path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw.strip() else None
    finally:
        conn.close()


def create(d: Daemon, name: str, body: dict[str, Any]) -> tuple[int, Any]:
    return api(d, "POST", f"/containers/create?name={name}", {"Image": "busybox", **body})


def exists(d: Daemon, kind: str, ref: str) -> bool:
    path = f"/{kind}/{urllib.parse.quote(ref, safe='')}"
    return api(d, "GET", path + ("/json" if kind == "containers" else ""))[0] == 200


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def firewall() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


def netns_pins(d: Daemon) -> set[str]:
    path = d.exec_root / "netns"
    return set(os.listdir(path)) if path.is_dir() else set()


class Marks:
    """What a crafted payload would leave on the host if a daemon let it through: made
    unique per test, looked for after the attempt, removed at the very end (after the
    daemon fixtures' teardown, which may replay a recorded payload once more)."""

    def __init__(self) -> None:
        self.chains: list[str] = []
        self.links: list[str] = []

    def chain(self) -> str:
        self.chains.append(f"DPYI{secrets.token_hex(2).upper()}")
        return self.chains[-1]

    def link(self) -> str:
        self.links.append(f"dpyinj{secrets.token_hex(4)}")
        return self.links[-1]

    def remove(self) -> None:
        for chain in self.chains:
            if f":{chain} " in firewall():
                subprocess.run(["iptables", "-w", "-F", chain], capture_output=True)
                subprocess.run(["iptables", "-w", "-X", chain], capture_output=True)
        for name in self.links:
            if name in links():
                subprocess.run(["ip", "link", "del", name], capture_output=True)


@pytest.fixture
def marks() -> Iterator[Marks]:
    m = Marks()
    yield m
    m.remove()


def refused(status: int, doc: Any, message: str | None = None) -> None:
    __tracebackhide__ = True
    assert 400 <= status < 500, (status, doc)
    if message is not None:
        assert doc == {"message": message}


@pytest.fixture
def names(daemon: Daemon) -> Iterator[Callable[[str], str]]:
    """make(prefix) -> a unique container name; those containers are removed afterwards."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(f"{prefix}-{secrets.token_hex(4)}")
        return made[-1]

    yield make
    for name in made:
        api(daemon, "DELETE", f"/containers/{name}?force=1&v=1")


@pytest.fixture
def user_network(daemon: Daemon) -> Iterator[str]:
    name = f"inj-{secrets.token_hex(4)}"
    status, doc = api(daemon, "POST", "/networks/create", {"Name": name})
    assert status == 201, doc
    yield name
    api(daemon, "DELETE", f"/networks/{name}")


# --------------------------------------------------------------------------- item 1: MACs

BAD_MACS = [pytest.param(f"02:42:ac:11:00:09{ch}1", id=k) for k, ch in HOSTILE.items()] + [
    pytest.param("02:42:ac:11:00:09\n", id="final-newline"),
    pytest.param("zz:42:ac:11:00:09", id="not-hex"),
    pytest.param("02:42-ac:11:00:09", id="mixed-separators")]


@pytest.mark.parametrize("mac", BAD_MACS)
def test_container_mac_address_is_refused_at_create(daemon: Daemon, busybox_image: str,
                                                    names: Callable[[str], str],
                                                    mac: str) -> None:
    name = names("mac")
    status, doc = create(daemon, name, {"MacAddress": mac})
    refused(status, doc, f"invalid config for network bridge: invalid MAC address {mac}")
    assert not exists(daemon, "containers", name)


@pytest.mark.parametrize("network", ["bridge", "no-such-network"])
@pytest.mark.parametrize("mac", BAD_MACS[:6])
def test_endpoint_mac_address_is_refused_at_create(daemon: Daemon, busybox_image: str,
                                                   names: Callable[[str], str], mac: str,
                                                   network: str) -> None:
    """Also for a network that does not exist yet (the check is the value's, not the
    network's)."""
    name = names("epmac")
    status, doc = create(daemon, name, {
        "HostConfig": {"NetworkMode": network},
        "NetworkingConfig": {"EndpointsConfig": {network: {"MacAddress": mac}}}})
    refused(status, doc, f"invalid config for network {network}: invalid MAC address {mac}")
    assert not exists(daemon, "containers", name)


def test_mac_address_notations_of_dockerd_are_accepted(daemon: Daemon, docker: DockerRun,
                                                       busybox_image: str,
                                                       names: Callable[[str], str]) -> None:
    """Go's net.ParseMAC notations: the interface gets the address in canonical form."""
    for given in ("02-42-AC-11-FF-0A", "0242.ac11.ff0b"):
        name = names("macok")
        status, doc = create(daemon, name, {"MacAddress": given, "Cmd": ["sleep", "30"]})
        assert status == 201, doc
        assert api(daemon, "POST", f"/containers/{name}/start")[0] == 204
        out = docker("exec", name, "cat", "/sys/class/net/eth0/address").stdout.strip()
        digits = given.replace("-", "").replace(".", "").lower()
        assert out == ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def _mac_injection(victim_pid: int, mark: str) -> str:
    """A MAC that, pasted into the default bridge's `ip -batch` script, ends the veth line
    with a comment after sending its peer elsewhere, then runs `link add MARK`."""
    return f"02:42:ac:11:00:09 netns {victim_pid} #\nlink add {mark} type bridge\n#"


def test_mac_injection_never_reaches_ip(marks: Marks, daemon: Daemon, docker: DockerRun,
                                        busybox_image: str,
                                        names: Callable[[str], str]) -> None:
    victim = names("victim")
    docker("run", "-d", "--name", victim, "--network", "none", "busybox", "sleep", "60")
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", victim).stdout)
    mark = marks.link()
    pins = netns_pins(daemon)
    name = names("inject")
    status, doc = create(daemon, name, {"MacAddress": _mac_injection(pid, mark),
                                        "Cmd": ["true"]})
    if status == 201:  # a broken daemon: let the script run, to show what it does
        api(daemon, "POST", f"/containers/{name}/start")
    assert mark not in links(), "the client's `ip link add` ran on the host"
    refused(status, doc)
    assert netns_pins(daemon) == pins


def test_connect_refuses_a_bad_mac_or_alias(daemon: Daemon, busybox_image: str,
                                            names: Callable[[str], str],
                                            user_network: str) -> None:
    name = names("conn")
    assert create(daemon, name, {"Cmd": ["sleep", "30"]})[0] == 201
    for ch in HOSTILE.values():
        mac = f"02:42:ac:11:00:0c{ch}x"
        status, doc = api(daemon, "POST", f"/networks/{user_network}/connect",
                          {"Container": name, "EndpointConfig": {"MacAddress": mac}})
        refused(status, doc, f"invalid MAC address {mac}")
        alias = f"a{ch}b"
        status, doc = api(daemon, "POST", f"/networks/{user_network}/connect",
                          {"Container": name, "EndpointConfig": {"Aliases": [alias]}})
        refused(status, doc, f"invalid network alias {json.dumps(alias)}: only "
                             "[a-zA-Z0-9_.-] are allowed")
    inspect = api(daemon, "GET", f"/containers/{name}/json")[1]
    assert user_network not in inspect["NetworkSettings"]["Networks"]


# --------------------------------------------------------------------------- aliases

@pytest.mark.parametrize("ch", [pytest.param(v, id=k) for k, v in HOSTILE.items()]
                         + [pytest.param(",", id="comma")])
def test_alias_is_refused_at_create(daemon: Daemon, busybox_image: str,
                                    names: Callable[[str], str], user_network: str,
                                    ch: str) -> None:
    """Aliases become lines of aardvark-dns' config: "web\\n10.0.0.9 db" would answer
    the whole network's lookups of db."""
    for network in (user_network, "not-made-yet"):
        name = names("alias")
        alias = f"web{ch}10.0.0.9 db"
        status, doc = create(daemon, name, {
            "HostConfig": {"NetworkMode": network},
            "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": ["ok", alias]}}}})
        refused(status, doc, f"invalid network alias {json.dumps(alias)}: only "
                             "[a-zA-Z0-9_.-] are allowed")
        assert not exists(daemon, "containers", name)


# --------------------------------------------------------------------------- item 2: bridges

BAD_BRIDGES = [pytest.param(f"b{ch}x", id=k) for k, ch in HOSTILE.items()] + [
    pytest.param(v, id=i) for i, v in (("slash", "b/x"), ("colon", "b:x"), ("dot", "."),
                                        ("dotdot", ".."), ("backslash", "b\\x"),
                                        ("wildcard", "br+"), ("negation", "!br"),
                                        ("control", "b\x01x"), ("non-ascii", "br\u00e9"))]


@pytest.mark.parametrize("bridge", BAD_BRIDGES)
def test_bridge_name_is_refused_at_network_create(daemon: Daemon, bridge: str) -> None:
    name = f"inj-{secrets.token_hex(4)}"
    status, doc = api(daemon, "POST", "/networks/create", {
        "Name": name, "Options": {"com.docker.network.bridge.name": bridge}})
    if status == 201:
        api(daemon, "DELETE", f"/networks/{name}")
    refused(status, doc, "invalid argument")
    assert not exists(daemon, "networks", name)


def test_bridge_name_too_long_has_dockerds_answer(daemon: Daemon) -> None:
    status, doc = api(daemon, "POST", "/networks/create", {
        "Name": f"inj-{secrets.token_hex(4)}",
        "Options": {"com.docker.network.bridge.name": "b" * 16}})
    refused(status, doc, "failed to check bridge interface existence: numerical result out "
                         "of range")


def _chain_injection(chain: str) -> str:
    """15 characters that, pasted into the isolation rules' iptables-restore input,
    declare a chain of the client's choosing (it outlives the network)."""
    return f"a\n:{chain}\t-\n#"


def test_bridge_name_injection_never_reaches_iptables(marks: Marks, daemon: Daemon,
                                                      docker: DockerRun,
                                                      busybox_image: str) -> None:
    docker("run", "--rm", "busybox", "true")  # the isolation rules are live from here on
    chain = marks.chain()
    name = f"inj-{secrets.token_hex(4)}"
    try:
        status, doc = api(daemon, "POST", "/networks/create", {
            "Name": name, "Options": {"com.docker.network.bridge.name": _chain_injection(chain)}})
        assert f":{chain} " not in firewall(), "the client's chain was declared"
        refused(status, doc, "invalid argument")
        assert not exists(daemon, "networks", name)
    finally:
        api(daemon, "DELETE", f"/networks/{name}")


def test_daemon_refuses_a_bad_bridge_flag() -> None:
    short = Path(tempfile.mkdtemp(prefix="dpj-", dir="/tmp"))
    try:
        (short / "daemon.json").write_text(json.dumps({"bridge": "dpy\nx"}))
        argv = [sys.executable, "-m", "dockerd_py", "-H", f"unix://{short}/d.sock",
                "--data-root", str(short / "root"), "--exec-root", str(short / "exec"),
                "--pidfile", str(short / "d.pid"), "--config-file", str(short / "daemon.json")]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.communicate(timeout=30)
            pytest.fail("the daemon started with -b 'dpy\\nx'")
        assert proc.returncode == 1, err
        assert "failed to start daemon: invalid bridge name 'dpy\\nx' (-b/--bridge)" in err
    finally:
        shutil.rmtree(short, ignore_errors=True)


# --------------------------------------------------------------------------- older records

@pytest.fixture
def own_daemon(busybox_tar: Path) -> Iterator[Daemon]:
    """A daemon of this test's own, whose database the test may edit while it is stopped."""
    tmp = Path(tempfile.mkdtemp(prefix="dpj-", dir="/tmp"))
    d = Daemon(tmp)
    d.start()
    networks: list[dict[str, Any]] = []
    try:
        cli(d, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            ids = cli(d, "ps", "-aq", check=False).stdout.split()
            if ids:
                cli(d, "rm", "-f", *ids, check=False)
            nets = cli(d, "network", "ls", "-q", "--no-trunc", check=False).stdout.split()
            networks = json.loads(cli(d, "network", "inspect", *nets, check=False).stdout
                                  or "[]") if nets else []
            for n in networks:
                if n["Name"] not in ("bridge", "host", "none"):
                    cli(d, "network", "rm", n["Id"], check=False)
        d.stop()
        leftovers = network_leftovers(d, networks)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not leftovers


def cli(d: Daemon, *args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
    __tracebackhide__ = True
    r = subprocess.run([DOCKER_CLI, *map(str, args)], capture_output=True, text=True,
                       env=d.cli_env(), timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {args}: {r.stderr}\n--- daemon log ---\n{d.log_tail()}")
    return r


def edit_db(d: Daemon, edit: Callable[[sqlite3.Connection], None]) -> None:
    """Change rows while the daemon is stopped, as an older daemon might have left them."""
    d.stop()
    conn = sqlite3.connect(d.data_root / "metadata.db")
    try:
        with conn:
            edit(conn)
    finally:
        conn.close()
    d.start()


def test_isolation_leaves_out_a_bad_bridge_name_from_an_older_record(
        marks: Marks, own_daemon: Daemon) -> None:
    d = own_daemon
    chain = marks.chain()
    good = json.loads(cli(d, "network", "inspect", cli(d, "network", "create", "good")
                          .stdout.strip()).stdout)[0]
    bad_id = cli(d, "network", "create", "bad").stdout.strip()
    bad_name = _chain_injection(chain)

    def poison(conn: sqlite3.Connection) -> None:
        data = json.loads(conn.execute("SELECT data FROM networks WHERE id = ?",
                                       (bad_id,)).fetchone()[0])
        data["bridge"] = bad_name
        data["options"]["com.docker.network.bridge.name"] = bad_name
        conn.execute("UPDATE networks SET data = ? WHERE id = ?", (json.dumps(data), bad_id))

    edit_db(d, poison)
    cli(d, "run", "-d", "--name", "on-good", "--network", "good", "busybox", "sleep", "60")
    rules = firewall()
    assert f":{chain} " not in rules, "the recorded bridge name was pasted into the rules"
    bridge = f"br-{good['Id'][:12]}"
    assert any(f"-i {bridge} ! -o {bridge} -j DPY-ISOLATION-2-" in ln
               for ln in rules.splitlines()), "the isolation sync failed"
    assert "left out of the isolation rules" in d.log_path.read_text()
    r = cli(d, "run", "--rm", "--network", "bad", "busybox", "true", check=False)
    assert r.returncode != 0 and "invalid bridge name" in r.stderr, r.stderr
    assert f":{chain} " not in firewall()


def test_start_refuses_a_bad_mac_from_an_older_record(marks: Marks,
                                                      own_daemon: Daemon) -> None:
    d = own_daemon
    cli(d, "run", "-d", "--name", "victim", "--network", "none", "busybox", "sleep", "60")
    pid = int(cli(d, "inspect", "-f", "{{.State.Pid}}", "victim").stdout)
    cid = cli(d, "create", "--name", "old", "--mac-address", "02:42:ac:11:00:0d", "busybox",
              "true").stdout.strip()
    mark = marks.link()

    def poison(conn: sqlite3.Connection) -> None:
        for column in ("config", "networking"):
            text = conn.execute(f"SELECT {column} FROM containers WHERE id = ?",
                                (cid,)).fetchone()[0]
            text = text.replace("02:42:ac:11:00:0d",
                                json.dumps(_mac_injection(pid, mark))[1:-1])
            conn.execute(f"UPDATE containers SET {column} = ? WHERE id = ?", (text, cid))

    edit_db(d, poison)
    # the victim kept running across the restart (live restore)
    assert int(cli(d, "inspect", "-f", "{{.State.Pid}}", "victim").stdout) == pid
    pins = netns_pins(d)
    r = cli(d, "start", "old", check=False)
    assert mark not in links(), "the recorded MAC was pasted into an ip script"
    assert r.returncode != 0 and "invalid MAC address" in r.stderr, r.stderr
    assert netns_pins(d) == pins


# --------------------------------------------------------------------------- /etc files

ETC_FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "Hostname": lambda v: {"Hostname": f"h{v}x"},
    "ExtraHosts-name": lambda v: {"HostConfig": {"ExtraHosts": [f"h{v}x:10.1.2.3"]}},
    "ExtraHosts-ip": lambda v: {"HostConfig": {"ExtraHosts": [f"h:10.1.2.3{v}10.6.6.6 evil"]}},
    "Links": lambda v: {"HostConfig": {"Links": [f"other:al{v}x"]}},
    "Dns": lambda v: {"HostConfig": {"Dns": [f"10.1.2.3{v}nameserver 10.6.6.6"]}},
    "DnsSearch": lambda v: {"HostConfig": {"DnsSearch": [f"a.example{v}nameserver 10.6.6.6"]}},
    "DnsOptions": lambda v: {"HostConfig": {"DnsOptions": [f"ndots:1{v}nameserver 10.6.6.6"]}},
}


@pytest.mark.parametrize("field", list(ETC_FIELDS))
@pytest.mark.parametrize("ch", [pytest.param(v, id=k) for k, v in SPLITTING.items()])
def test_etc_file_values_that_would_split_a_line_are_refused(
        daemon: Daemon, busybox_image: str, names: Callable[[str], str], field: str,
        ch: str) -> None:
    name = names("etc")
    status, doc = create(daemon, name, {"Cmd": ["true"], **ETC_FIELDS[field](ch)})
    refused(status, doc)
    assert not exists(daemon, "containers", name)


def test_etc_file_values_with_quotes_arrive_literally(daemon: Daemon, docker: DockerRun,
                                                      busybox_image: str,
                                                      names: Callable[[str], str]) -> None:
    """dockerd accepts quotes in these: each is one word of one line, as given."""
    name = names("etcq")
    status, doc = create(daemon, name, {
        "Cmd": ["cat", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"],
        "Hostname": "q\"h'x",
        "HostConfig": {"ExtraHosts": ["it's\"x:10.1.2.3"], "DnsSearch": ["it's.example"],
                       "DnsOptions": ['a"b'], "Dns": ["10.9.8.7"]}})
    assert status == 201, doc
    assert api(daemon, "POST", f"/containers/{name}/start")[0] == 204
    docker("wait", name)
    lines = docker("logs", name).stdout.splitlines()
    assert lines[0] == "q\"h'x"
    assert "10.1.2.3\tit's\"x" in lines
    assert [ln for ln in lines if ln.endswith("\tq\"h'x")]
    assert [ln for ln in lines if ln.startswith(("nameserver", "search", "options"))] == \
        ["nameserver 10.9.8.7", "search it's.example", 'options a"b']


# --------------------------------------------------------------------------- conmon, runc

@pytest.mark.parametrize("ch", [pytest.param(v, id=k) for k, v in HOSTILE.items()])
def test_container_name_is_refused(daemon: Daemon, busybox_image: str, ch: str) -> None:
    """The name is conmon's -n and an aardvark-dns name: the full name is checked."""
    name = f"web{ch}x"
    status, doc = api(daemon, "POST",
                      f"/containers/create?name={urllib.parse.quote(name)}",
                      {"Image": "busybox"})
    refused(status, doc, f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                         "are allowed")


def test_container_name_with_a_final_newline_is_refused(daemon: Daemon,
                                                        busybox_image: str) -> None:
    status, doc = api(daemon, "POST", "/containers/create?name=web%0A", {"Image": "busybox"})
    refused(status, doc)


def test_environment_arrives_literally(daemon: Daemon, docker: DockerRun, busybox_image: str,
                                       names: Callable[[str], str]) -> None:
    values = {f"V_{k.upper()}": f"a{ch}b" for k, ch in HOSTILE.items() if k != "nul"}
    name = names("env")
    status, doc = create(daemon, name, {"Cmd": ["cat", "/proc/self/environ"],
                                        "Env": [f"{k}={v}" for k, v in values.items()]})
    assert status == 201, doc
    assert api(daemon, "POST", f"/containers/{name}/start")[0] == 204
    docker("wait", name)
    env = dict(e.split("=", 1) for e in docker("logs", name).stdout.split("\0") if "=" in e)
    assert {k: env.get(k) for k in values} == values


def test_environment_with_nul_is_refused(daemon: Daemon, docker: DockerRun, busybox_image: str,
                                         names: Callable[[str], str]) -> None:
    name = names("envnul")
    status, doc = create(daemon, name, {"Cmd": ["true"], "Env": ["A=x\0y"]})
    refused(status, doc, "environment variable value can't contain null(\\x00): \"A=x\\x00y\"")
    other = names("envnul")
    docker("run", "-d", "--name", other, "busybox", "sleep", "30")
    status, doc = api(daemon, "POST", f"/containers/{other}/exec",
                      {"Cmd": ["true"], "Env": ["A=x\0y"]})
    refused(status, doc)


def test_top_arguments_with_nul_are_refused(daemon: Daemon, docker: DockerRun,
                                            busybox_image: str,
                                            names: Callable[[str], str]) -> None:
    name = names("top")
    docker("run", "-d", "--name", name, "busybox", "sleep", "30")
    refused(*api(daemon, "GET", f"/containers/{name}/top?ps_args=-ef%00x"))
    refused(*api(daemon, "POST", f"/containers/{name}/kill?signal=KILL%0Ax"))


# --------------------------------------------------------------------------- volumes

def test_volume_option_with_nul_is_refused(daemon: Daemon) -> None:
    name = f"injv-{secrets.token_hex(4)}"
    status, doc = api(daemon, "POST", "/volumes/create", {
        "Name": name, "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m\0x"}})
    if status == 201:
        api(daemon, "DELETE", f"/volumes/{name}")
    refused(status, doc)


@pytest.mark.parametrize("ch", [pytest.param(v, id=k) for k, v in HOSTILE.items()
                                if k != "nul"])
def test_volume_options_stay_one_argument(daemon: Daemon, busybox_image: str,
                                          names: Callable[[str], str], ch: str) -> None:
    """dockerd takes any `-o`: the whole string is mount's one option argument, which
    the kernel refuses here; nothing is mounted and the start fails."""
    vol = f"injv-{secrets.token_hex(4)}"
    status, doc = api(daemon, "POST", "/volumes/create", {
        "Name": vol, "DriverOpts": {"type": "tmpfs", "device": "tmpfs",
                                    "o": f"size=1m{ch}-o{ch}bind"}})
    assert status == 201, doc
    name = names("vol")
    try:
        assert create(daemon, name, {"Cmd": ["true"],
                                     "HostConfig": {"Binds": [f"{vol}:/v"]}})[0] == 201
        status, doc = api(daemon, "POST", f"/containers/{name}/start")
        assert status >= 400 and "failed to mount local volume" in doc["message"], doc
        mountpoint = api(daemon, "GET", f"/volumes/{vol}")[1]["Mountpoint"]
        with open("/proc/self/mountinfo") as f:
            assert not [ln for ln in f if f" {mountpoint} " in ln]
    finally:
        api(daemon, "DELETE", f"/containers/{name}?force=1")
        api(daemon, "DELETE", f"/volumes/{vol}")
