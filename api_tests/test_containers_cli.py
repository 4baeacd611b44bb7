"""Containers through the stock CLI (and docker-py): run/create/start, logs, stop/kill/restart,
pause, rename, rm, ps, inspect, prune, events, image-removal conflicts, bad input.

Every container is real (conmon + runc or crun). Expected strings were compared by hand with
Docker's dockerd 20.10 driven by the same 28.2 CLI; where dockerd 28 words a message
differently from 20.10, the test expects 28's wording (moby@v28.2.2 path noted inline).
Networking is `none` for now, so nothing here needs a network.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ID64 = re.compile(r"^[0-9a-f]{64}$")
RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)$")
ZERO_TIME = "0001-01-01T00:00:00Z"
UP = r"Up (Less than a second|\d+ seconds?)"
DEFAULT_CAPS = "00000000a80425fb"  # dockerd's default capability set
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "dockerd-py"


# --- helpers -------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}", pytrace=False)
        time.sleep(0.05)


def inspect(docker, ref: str, template: str) -> str:
    return docker("inspect", "-f", template, ref).stdout.rstrip("\n")


def run_d(docker, *args: object) -> str:
    """docker run -d ARGS -> the full container ID (checked)."""
    out = docker("run", "-d", *args).stdout.strip()
    assert ID64.match(out), out
    return out


def run_to_end(docker, name: str, *args: object) -> tuple[int, str, str]:
    """docker run -d --name NAME ARGS; docker wait -> (exit code, stdout log, stderr log)."""
    run_d(docker, "--name", name, *args)
    code = int(docker("wait", name).stdout)
    logs = docker("logs", name)
    return code, logs.stdout, logs.stderr


def parse_rfc3339(text: str) -> float:
    """RFC 3339 (UTC 'Z', up to 9 fractional digits) -> unix seconds."""
    base, _, frac = text.rstrip("Z").partition(".")
    when = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    return when.replace(tzinfo=datetime.UTC).timestamp() + float(f"0.{frac or 0}")


def container_ids(docker) -> set[str]:
    return set(docker("ps", "-aq", "--no-trunc").stdout.split())


def events(docker, since: float, *filters: str) -> list[str]:
    """Container events between `since` and now as 'action key=value, ...' lines (ID dropped)."""
    args = ["events", "--since", f"{since:.6f}", "--until", f"{time.time():.6f}"]
    for f in filters:
        args += ["--filter", f]
    out = docker(*args, timeout=30).stdout
    lines = []
    for line in out.splitlines():
        m = re.match(r"^\S+ container (.+?) [0-9a-f]{64} \((.*)\)$", line)
        assert m, line
        lines.append(f"{m.group(1)} ({m.group(2)})")
    return lines


def status_hex(text: str, field: str) -> str:
    m = re.search(rf"^{field}:\s+(\S+)$", text, re.M)
    assert m, f"{field} not in {text!r}"
    return m.group(1)


# --- runtime artifacts: mounts, monitors, runtime state, cgroups ---------------------------------


def _ids_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", text))


def runtime_artifacts(daemon) -> dict[str, set[str]]:
    """Container IDs that still own something on the host, by kind of leftover."""
    data_root, exec_root = str(daemon.data_root), str(daemon.exec_root)
    found: dict[str, set[str]] = {"mounts": set(), "conmon": set(), "runtime state": set(),
                                  "monitor dirs": set(), "state dirs": set()}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(data_root + "/") or point.startswith(exec_root + "/"):
                found["mounts"] |= _ids_in(point)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and exec_root.encode() in b" ".join(argv):
            found["conmon"] |= _ids_in(b" ".join(argv).decode(errors="replace"))
    for sub, kind in (("runtime-runc", "runtime state"), ("runtime-crun", "runtime state"),
                      ("rt/c", "monitor dirs")):
        path = Path(exec_root) / sub
        if path.is_dir():
            found[kind] |= {n for n in os.listdir(path) if ID64.match(n)}
    path = Path(data_root) / "containers"
    if path.is_dir():
        found["state dirs"] |= {n for n in os.listdir(path) if ID64.match(n)}
    return found


def cgroup_leftovers(ids: set[str]) -> list[str]:
    out = []
    if not ids or not CGROUP_ROOT.is_dir():
        return out
    for controller in os.listdir(CGROUP_ROOT):
        parent = CGROUP_ROOT / controller / CGROUP_PARENT
        if parent.is_dir() and not parent.is_symlink():
            out += [str(parent / n) for n in os.listdir(parent) if n in ids]
    return out


def runc_list(daemon, runtime: str = "runc") -> set[str]:
    root = Path(daemon.exec_root) / f"runtime-{runtime}"
    if not root.is_dir():
        return set()
    proc = subprocess.run([runtime, "--root", str(root), "list", "-q"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def assert_no_leftovers(daemon, docker, removed: set[str]) -> None:
    """Nothing on the host belongs to a container the daemon no longer knows; nothing at all
    (cgroups included) belongs to the `removed` IDs."""
    known = container_ids(docker)
    problems = []
    for kind, ids in runtime_artifacts(daemon).items():
        if stray := (ids - known) | (ids & removed):
            problems.append(f"{kind}: {sorted(stray)}")
    if stray := (runc_list(daemon) | runc_list(daemon, "crun")) - known:
        problems.append(f"runc/crun list: {sorted(stray)}")
    if cg := cgroup_leftovers(removed):
        problems.append(f"cgroups: {cg}")
    assert not problems, "leftovers of removed containers:\n  " + "\n  ".join(problems)


# --- fixtures ------------------------------------------------------------------------------------


def check_hygiene_since(daemon, docker, start: float) -> None:
    """No mount, monitor, runtime state or cgroup of a container destroyed since `start`, nor
    of any container the daemon does not know."""
    destroyed = set(docker("events", "--since", f"{start:.6f}", "--until", f"{time.time():.6f}",
                           "--filter", "type=container", "--filter", "event=destroy",
                           "--format", "{{.Actor.ID}}", timeout=30).stdout.split())
    deadline = time.monotonic() + 5
    while cgroup_leftovers(destroyed) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_no_leftovers(daemon, docker, destroyed)


@pytest.fixture(scope="module", autouse=True)
def module_hygiene(daemon, docker) -> Iterator[None]:
    start = time.time()
    yield
    check_hygiene_since(daemon, docker, start)




@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bind"
    d.mkdir()
    (d / "in").write_text("from host\n")
    return d


# --- run -d, create + start, wait, state ---------------------------------------------------------


def test_run_detached_exit_code_and_state(docker, ctr) -> None:
    name = ctr()
    cid = run_d(docker, "--name", name, "busybox", "sh", "-c", "exit 3")
    assert docker("wait", name).stdout == "3\n"
    assert inspect(docker, cid, "{{.State.ExitCode}} {{.State.Status}} {{.State.Pid}}") \
        == "3 exited 0"
    started, finished = inspect(docker, name, "{{.State.StartedAt}} {{.State.FinishedAt}}").split()
    assert RFC3339NANO.match(started) and RFC3339NANO.match(finished), (started, finished)
    assert abs(parse_rfc3339(finished) - time.time()) < 30
    assert inspect(docker, name, "{{.State.Running}} {{.State.OOMKilled}} {{.State.Error}}") \
        == "false false "
    status = docker("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").stdout
    assert re.fullmatch(r"Exited \(3\) (Less than a second|\d+ seconds?) ago\n", status), status


def test_wait_several_and_exit_codes(docker, ctr) -> None:
    a, b = ctr(), ctr()
    run_d(docker, "--name", a, "busybox", "sh", "-c", "exit 0")
    run_d(docker, "--name", b, "busybox", "sh", "-c", "sleep 0.3; exit 42")
    assert docker("wait", a, b).stdout == "0\n42\n"


def test_create_then_start(docker, ctr) -> None:
    name = ctr()
    cid = docker("create", "--name", name, "busybox", "sleep", "30").stdout.strip()
    assert ID64.match(cid)
    assert inspect(docker, name, "{{.State.Status}} {{.State.Pid}} {{.State.StartedAt}} "
                                 "{{.State.FinishedAt}} {{.State.ExitCode}}") \
        == f"created 0 {ZERO_TIME} {ZERO_TIME} 0"
    assert docker("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout \
        == "Created\n"
    assert docker("ps", "-q", "--filter", f"id={cid}").stdout == ""  # not running: not listed
    before = time.time()
    assert docker("start", name).stdout == f"{name}\n"
    status, pid, started = inspect(
        docker, name, "{{.State.Status}} {{.State.Pid}} {{.State.StartedAt}}").split()
    assert status == "running" and int(pid) > 0
    assert Path(f"/proc/{pid}").exists()
    assert RFC3339NANO.match(started) and before - 2 < parse_rfc3339(started) < time.time() + 2
    assert re.fullmatch(UP + "\n", docker("ps", "--filter", f"id={cid}", "--format",
                                          "{{.Status}}").stdout)
    # starting a running container is not an error (304: the CLI prints the name)
    assert docker("start", name).stdout == f"{name}\n"
    docker("kill", name)
    assert docker("wait", name).stdout == "137\n"
    started, finished = inspect(docker, name, "{{.State.StartedAt}} {{.State.FinishedAt}}").split()
    assert parse_rfc3339(finished) >= parse_rfc3339(started)
    assert not Path(f"/proc/{pid}").exists() or "sleep" not in Path(f"/proc/{pid}/cmdline") \
        .read_bytes().decode(errors="replace")


# --- logs ----------------------------------------------------------------------------------------


def test_logs_keep_stdout_and_stderr_apart(docker, ctr) -> None:
    code, out, err = run_to_end(docker, ctr(), "busybox", "sh", "-c",
                                "echo o1; echo e1 >&2; echo o2; echo e2 >&2; printf 'no-eol'")
    assert code == 0
    assert out == "o1\no2\nno-eol"
    assert err == "e1\ne2\n"


def test_logs_tail_and_timestamps(docker, ctr) -> None:
    name = ctr()
    assert run_to_end(docker, name, "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo $i; done"
                      )[0] == 0
    assert docker("logs", "--tail", "2", name).stdout == "4\n5\n"
    assert docker("logs", "--tail", "0", name).stdout == ""
    assert docker("logs", "--tail", "all", name).stdout == "1\n2\n3\n4\n5\n"
    assert docker("logs", "-n", "10", name).stdout == "1\n2\n3\n4\n5\n"
    stamped = docker("logs", "-t", "--tail", "3", name).stdout.splitlines()
    assert [LOG_TS.match(line).group(2) for line in stamped] == ["3", "4", "5"], stamped
    times = [parse_rfc3339(LOG_TS.match(line).group(1)) for line in stamped]
    assert times == sorted(times) and abs(times[-1] - time.time()) < 30


def test_logs_since_until(docker, ctr) -> None:
    name = ctr()
    run_to_end(docker, name, "busybox", "sh", "-c", "echo early; sleep 1.2; echo late")
    lines = docker("logs", "-t", name).stdout.splitlines()
    assert [LOG_TS.match(line).group(2) for line in lines] == ["early", "late"]
    t_early, t_late = (parse_rfc3339(LOG_TS.match(line).group(1)) for line in lines)
    assert t_late - t_early > 1.0
    middle = f"{(t_early + t_late) / 2:.9f}"
    assert docker("logs", "--since", middle, name).stdout == "late\n"
    assert docker("logs", "--until", middle, name).stdout == "early\n"
    assert docker("logs", "--since", "2100-01-01T00:00:00Z", name).stdout == ""
    # since as RFC 3339, as a user would paste it from `logs -t`
    assert docker("logs", "--since", LOG_TS.match(lines[1]).group(1), name).stdout == "late\n"


def test_logs_follow_ends_when_the_container_exits(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "busybox", "sh", "-c",
          "echo first; sleep 1; echo second >&2; sleep 0.5; echo third")
    t0 = time.monotonic()
    follow = docker("logs", "-f", name, timeout=20)
    assert time.monotonic() - t0 > 0.8   # it really followed
    assert follow.stdout == "first\nthird\n"
    assert follow.stderr == "second\n"
    # a stopped container: -f returns at once
    t0 = time.monotonic()
    assert docker("logs", "-f", "--tail", "1", name, timeout=20).stdout == "third\n"
    assert time.monotonic() - t0 < 5


def test_logs_of_unknown_container(docker) -> None:
    r = docker("logs", "no-such-container-xyz", check=False)
    assert r.returncode == 1
    assert r.stderr == "Error response from daemon: No such container: no-such-container-xyz\n"


# --- names, images: create-time errors -----------------------------------------------------------


def test_name_conflict(docker, ctr) -> None:
    name = ctr()
    cid = docker("create", "--name", name, "busybox").stdout.strip()
    before = container_ids(docker)
    for cmd in ("create", "run"):
        extra = ["-d"] if cmd == "run" else []
        r = docker(cmd, *extra, "--name", name, "busybox", "true", check=False)
        assert r.returncode == (125 if cmd == "run" else 1)  # the CLI's convention
        assert r.stderr.startswith(
            ("docker: " if cmd == "run" else "")
            + f'Error response from daemon: Conflict. The container name "/{name}" is '
            f'already in use by container "{cid}". You have to remove (or rename) that '
            "container to be able to reuse that name.\n"), r.stderr
    assert container_ids(docker) == before


@pytest.mark.parametrize("bad", ["a#b", "-lead", "x"])
def test_invalid_name(docker, busybox_image, bad) -> None:
    before = container_ids(docker)
    r = docker("create", "--name", bad, "busybox", check=False)
    assert r.returncode == 1
    assert r.stderr.startswith(f"Error response from daemon: Invalid container name ({bad}), "
                               "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed\n"), r.stderr
    assert container_ids(docker) == before


def test_unknown_image(docker, busybox_image) -> None:
    before = container_ids(docker)
    for cmd in (["run", "-d"], ["create"]):
        r = docker(*cmd, "no-such-image-dpy:1.0", "true", check=False)
        assert r.returncode == (125 if cmd[0] == "run" else 1), r
        assert r.stderr.startswith("Unable to find image 'no-such-image-dpy:1.0' locally\n"), \
            r.stderr
        assert "Error response from daemon: " in r.stderr
        assert r.stdout == ""
    assert container_ids(docker) == before


def test_unknown_image_api_status(dockerpy, busybox_image) -> None:
    import docker as docker_sdk
    with pytest.raises(docker_sdk.errors.ImageNotFound) as info:
        dockerpy.api.create_container("no-such-image-dpy:2.0", "true")
    assert info.value.status_code == 404
    assert "No such image: no-such-image-dpy:2.0" in str(info.value)


# --- the process: env, cwd, user, entrypoint, hostname -------------------------------------------


def test_env_workdir_user_entrypoint_hostname(docker, ctr, tmp_path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("FOO=bar\n# a comment\nBAZ=qu ux\n")
    name = ctr()
    script = "echo $A $FOO $BAZ; pwd; id; hostname; env | sort"
    code, out, err = run_to_end(docker, name, "-e", "A=1", "--env-file", env_file,
                                "-w", "/tmp/wd", "-u", "1000:1000", "--hostname", "hh",
                                "--entrypoint", "/bin/sh", "busybox", "-c", script)
    assert (code, err) == (0, "")
    assert out == ("1 bar qu ux\n/tmp/wd\nuid=1000(user) gid=1000(user) groups=1000(user)\nhh\n"
                   "A=1\nBAZ=qu ux\nFOO=bar\nHOME=/home/user\nHOSTNAME=hh\n"
                   "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                   "PWD=/tmp/wd\nSHLVL=1\n")
    got = inspect(docker, name, "{{json .Config.Env}}|{{json .Config.Cmd}}|"
                                "{{json .Config.Entrypoint}}|{{.Path}}|{{json .Args}}|"
                                "{{.Config.User}}|{{.Config.WorkingDir}}|{{.Config.Hostname}}")
    assert got == ('["FOO=bar","BAZ=qu ux","A=1"]|["-c",' + json.dumps(script) + ']|["/bin/sh"]|'
                   '/bin/sh|["-c",' + json.dumps(script) + "]|1000:1000|/tmp/wd|hh")


def test_default_hostname_is_the_short_id(docker, ctr) -> None:
    name = ctr()
    code, out, _ = run_to_end(docker, name, "busybox", "hostname")
    assert out == inspect(docker, name, "{{.Id}}")[:12] + "\n"


def test_user_by_name(docker, ctr) -> None:
    code, out, _ = run_to_end(docker, ctr(), "-u", "user", "busybox", "sh", "-c", "id; echo $HOME")
    assert (code, out) == (0, "uid=1000(user) gid=1000(user) groups=1000(user)\n/home/user\n")


def test_unknown_user(docker, ctr) -> None:
    name = ctr()
    r = docker("run", "-d", "--name", name, "-u", "nosuch", "busybox", "id", check=False)
    assert r.returncode == 125
    assert "Error response from daemon: unable to find user nosuch: no matching entries in " \
           "passwd file\n" in r.stderr
    assert docker("wait", name).stdout == "128\n"
    assert inspect(docker, name, "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}") \
        == "created 128 unable to find user nosuch: no matching entries in passwd file"


def test_start_failure_command_not_found(docker, ctr, daemon) -> None:
    name = ctr()
    r = docker("run", "-d", "--name", name, "busybox", "no-such-cmd", check=False)
    assert r.returncode == 127
    assert 'exec: "no-such-cmd": executable file not found in $PATH' in r.stderr
    cid = inspect(docker, name, "{{.Id}}")
    assert inspect(docker, name, "{{.State.Status}} {{.State.ExitCode}}") == "created 127"
    art = runtime_artifacts(daemon)
    assert cid not in art["mounts"] | art["conmon"] | art["runtime state"] | art["monitor dirs"]
    r = docker("run", "-d", "busybox", "/etc/passwd", check=False)
    assert r.returncode == 126, r.stderr
    assert 'exec: "/etc/passwd": permission denied' in r.stderr
    docker("rm", r.stdout.strip())


def test_attached_run_of_a_missing_command(docker, unique_name, busybox_image) -> None:
    """`docker run` attaches before it starts: the attach makes the container in the
    runtime (and fails), the start makes it again and reports the runtime's error."""
    for _ in range(2):
        r = docker("run", "--rm", "busybox", "/nonexist", check=False, timeout=30)
        assert r.returncode == 127, r.stderr
        assert 'exec: "/nonexist": stat /nonexist: no such file or directory' in r.stderr


def test_rm_flag_with_start_failure_removes_container(docker, unique_name, busybox_image) -> None:
    """The CLI waits for the `removed` condition after a failed start with --rm (run.go):
    the daemon must remove an AutoRemove container whose start failed (API-NOTES §3.17)."""
    name = unique_name()
    try:
        r = docker("run", "--rm", "-d", "--name", name, "busybox", "no-such-cmd", check=False,
                   timeout=15)
        assert r.returncode == 127
        assert docker("ps", "-aq", "--filter", f"name=^{name}$").stdout == ""
    finally:
        docker("rm", "-f", name, check=False)


# --- mounts, filesystem --------------------------------------------------------------------------


def test_bind_mounts_rw_and_ro(docker, ctr, host_dir) -> None:
    name = ctr()
    script = ("cat /b/in; echo written > /b/out; touch /r/x; echo rc=$?; "
              "grep -E ' /(b|r) ' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1 | sort")
    code, out, err = run_to_end(docker, name, "-v", f"{host_dir}:/b", "-v", f"{host_dir}:/r:ro",
                                "busybox", "sh", "-c", script)
    assert out == "from host\nrc=1\n/b rw\n/r ro\n"
    assert err == "touch: /r/x: Read-only file system\n"
    assert (host_dir / "out").read_text() == "written\n"
    assert not (host_dir / "x").exists()
    mounts = json.loads(inspect(docker, name, "{{json .Mounts}}"))
    assert sorted(mounts, key=lambda m: m["Destination"]) == [  # dockerd: map order
        {"Type": "bind", "Source": str(host_dir), "Destination": "/b", "Mode": "", "RW": True,
         "Propagation": "rprivate"},
        {"Type": "bind", "Source": str(host_dir), "Destination": "/r", "Mode": "ro", "RW": False,
         "Propagation": "rprivate"}]
    # The CLI builds Binds from a Go map: their order varies from run to run.
    assert sorted(json.loads(inspect(docker, name, "{{json .HostConfig.Binds}}"))) == [
        f"{host_dir}:/b", f"{host_dir}:/r:ro"]


def test_mount_flag_bind(docker, ctr, host_dir) -> None:
    name = ctr()
    code, out, _ = run_to_end(docker, name, "--mount", f"type=bind,src={host_dir},dst=/m,readonly",
                              "busybox", "sh", "-c", "cat /m/in; touch /m/y 2>/dev/null; echo $?")
    assert out == "from host\n1\n"
    mounts = json.loads(inspect(docker, name, "{{json .Mounts}}"))
    assert [(m["Type"], m["Source"], m["Destination"], m["RW"]) for m in mounts] \
        == [("bind", str(host_dir), "/m", False)]


def test_tmpfs_and_read_only_rootfs(docker, ctr) -> None:
    name = ctr()
    script = ("touch /x; echo root=$?; touch /t/y && echo t=ok; "
              "grep ' /t ' /proc/self/mounts | cut -d' ' -f1-4; grep ' / ' /proc/self/mounts "
              "| cut -d' ' -f4 | cut -d, -f1")
    code, out, err = run_to_end(docker, name, "--read-only", "--tmpfs", "/t", "busybox", "sh",
                                "-c", script)
    assert out == "root=1\nt=ok\ntmpfs /t tmpfs rw,nosuid,nodev,noexec,relatime\nro\n"
    assert err == "touch: /x: Read-only file system\n"
    assert inspect(docker, name, "{{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.Tmpfs}}") \
        == 'true {"/t":""}'


def test_writable_rootfs_by_default(docker, ctr) -> None:
    code, out, _ = run_to_end(docker, ctr(), "busybox", "sh", "-c",
                              "echo hi > /new && cat /new && grep ' / ' /proc/self/mounts "
                              "| cut -d' ' -f3,4 | cut -d, -f1")
    assert out == "hi\noverlay rw\n"


# --- security ------------------------------------------------------------------------------------


def test_default_capabilities(docker, ctr) -> None:
    code, out, _ = run_to_end(docker, ctr(), "busybox", "grep", "-E",
                              "^(CapEff|CapBnd|NoNewPrivs)", "/proc/self/status")
    assert status_hex(out, "CapEff") == DEFAULT_CAPS
    assert status_hex(out, "CapBnd") == DEFAULT_CAPS
    assert status_hex(out, "NoNewPrivs") == "0"


def test_cap_add_drop_and_no_new_privileges(docker, ctr) -> None:
    name = ctr()
    code, out, _ = run_to_end(docker, name, "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN",
                              "--security-opt", "no-new-privileges", "busybox", "sh", "-c",
                              "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; "
                              "chown 1000 /tmp; echo chown=$?")
    assert status_hex(out, "CapEff") == "00000000a80435fa"  # +NET_ADMIN (12) -CHOWN (0)
    assert status_hex(out, "NoNewPrivs") == "1"
    assert "chown=1" in out
    assert inspect(docker, name, "{{.HostConfig.CapAdd}} {{.HostConfig.CapDrop}} "
                                 "{{.HostConfig.SecurityOpt}}") \
        == "[CAP_NET_ADMIN] [CAP_CHOWN] [no-new-privileges]"


def test_privileged_gets_the_daemons_bounding_set(docker, ctr, daemon) -> None:
    """dockerd 20.10 fails here (`unable to apply caps`): the VM lacks CAP_SYS_RESOURCE."""
    daemon_caps = status_hex(Path(f"/proc/{daemon.proc.pid}/status").read_text(), "CapBnd")
    code, out, _ = run_to_end(docker, ctr(), "--privileged", "busybox", "sh", "-c",
                              "grep -E '^CapEff' /proc/self/status; "
                              "grep ' /sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; "
                              "ls /dev | grep -c .")
    assert code == 0
    assert status_hex(out, "CapEff") == daemon_caps
    lines = out.splitlines()
    assert lines[1] == "rw"            # /sys writable when privileged
    assert int(lines[2]) > 10           # host devices


# --- resources -----------------------------------------------------------------------------------


def test_memory_cpus_pids_limits(docker, ctr) -> None:
    name = ctr()
    cid = run_d(docker, "--name", name, "--memory", "64m", "--cpus", "0.5", "--pids-limit", "33",
                "busybox", "sh", "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
                "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; "
                "exec sleep 30")
    wait_for(lambda: docker("logs", name).stdout.count("\n") >= 4, "limits in the logs")
    assert docker("logs", name).stdout == "67108864\n33\n50000\n100000\n"
    host = CGROUP_ROOT / "memory" / CGROUP_PARENT / cid / "memory.limit_in_bytes"
    assert host.read_text() == "67108864\n"
    assert (CGROUP_ROOT / "pids" / CGROUP_PARENT / cid / "pids.max").read_text() == "33\n"
    assert inspect(docker, name, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} "
                                 "{{.HostConfig.PidsLimit}}") == "67108864 500000000 33"
    docker("rm", "-f", name)
    wait_for(lambda: not host.parent.exists(), "the container's memory cgroup to go")


def test_init_runs_tini_as_pid_1(docker, ctr) -> None:
    name = ctr()
    code, out, _ = run_to_end(docker, name, "--init", "busybox", "sh", "-c",
                              "tr '\\0' ' ' < /proc/1/cmdline; echo; readlink /proc/1/exe; "
                              "echo $$")
    assert code == 0
    cmdline, exe, shell_pid = out.splitlines()
    assert cmdline.startswith("/sbin/docker-init -- sh -c "), cmdline
    assert shell_pid != "1"
    assert inspect(docker, name, "{{.HostConfig.Init}}") == "true"


def test_runtime_crun(docker, ctr, daemon) -> None:
    name = ctr()
    cid = run_d(docker, "--name", name, "--runtime", "crun", "--memory", "32m", "busybox", "sh",
                "-c", "echo hi; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; exec sleep 30")
    wait_for(lambda: docker("logs", name).stdout.count("\n") >= 2, "crun container output")
    assert docker("logs", name).stdout == "hi\n33554432\n"
    assert inspect(docker, name, "{{.HostConfig.Runtime}} {{.State.Status}}") == "crun running"
    assert cid in runc_list(daemon, "crun")
    assert cid not in runc_list(daemon, "runc")
    docker("stop", "-t", "0", name)
    assert inspect(docker, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    assert cid not in runc_list(daemon, "crun")


# --- stop, kill, restart -------------------------------------------------------------------------


def test_stop_sigterm_trapped_exits_with_its_own_code(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "busybox", "sh", "-c",
          "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done")
    wait_for(lambda: "ready" in docker("logs", name).stdout, "the trap to be set")
    t0 = time.monotonic()
    assert docker("stop", name).stdout == f"{name}\n"
    assert time.monotonic() - t0 < 5
    assert inspect(docker, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 7"
    assert docker("logs", name).stdout == "ready\ngot TERM\n"
    # stopping a stopped container: 304, the CLI prints the name and succeeds
    assert docker("stop", name).stdout == f"{name}\n"


def test_stop_default_sigterm_gives_143(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "--init", "busybox", "sleep", "30")
    t0 = time.monotonic()
    docker("stop", name)
    assert time.monotonic() - t0 < 5
    assert inspect(docker, name, "{{.State.ExitCode}}") == "143"


def test_stop_timeout_then_sigkill(docker, ctr) -> None:
    """busybox sleep as pid 1 ignores SIGTERM: SIGKILL after -t seconds, exit 137."""
    name = ctr()
    since = time.time()
    cid = run_d(docker, "--name", name, "--label", "lk=lv", "busybox", "sleep", "30")
    t0 = time.monotonic()
    docker("stop", "-t", "1", name)
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 5, elapsed
    assert inspect(docker, name, "{{.State.ExitCode}} {{.State.Status}}") == "137 exited"
    attrs = f"image=busybox, lk=lv, name={name}"
    got = [e for e in events(docker, since, f"container={cid}")]
    got = [re.sub(r"execDuration=\d+, ", "", e) for e in got]
    assert got == [f"create ({attrs})", f"start ({attrs})", f"kill ({attrs}, signal=15)",
                   f"kill ({attrs}, signal=9)", f"die (exitCode=137, {attrs})",
                   f"stop ({attrs})"]


def test_stop_signal_and_stop_timeout_options(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "--stop-signal", "SIGUSR1", "--stop-timeout", "1", "busybox",
          "sh", "-c", "trap 'echo USR1' USR1; echo ready; while true; do sleep 0.1; done")
    wait_for(lambda: "ready" in docker("logs", name).stdout, "the trap to be set")
    t0 = time.monotonic()
    docker("stop", name)
    assert 0.9 < time.monotonic() - t0 < 5
    assert docker("logs", name).stdout == "ready\nUSR1\n"
    assert inspect(docker, name, "{{.Config.StopSignal}} {{.Config.StopTimeout}} "
                                 "{{.State.ExitCode}}") == "SIGUSR1 1 137"


def test_stop_with_signal_flag(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "busybox", "sh", "-c",
          "trap 'exit 9' HUP; echo ready; while true; do sleep 0.1; done")
    wait_for(lambda: "ready" in docker("logs", name).stdout, "the trap to be set")
    docker("stop", "-s", "HUP", name)
    assert inspect(docker, name, "{{.State.ExitCode}}") == "9"


def test_kill_and_kill_signal(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "busybox", "sh", "-c",
          "trap 'echo HUP' HUP; echo ready; while true; do sleep 0.1; done")
    wait_for(lambda: "ready" in docker("logs", name).stdout, "the trap to be set")
    assert docker("kill", "-s", "HUP", name).stdout == f"{name}\n"
    wait_for(lambda: "HUP" in docker("logs", name).stdout, "the HUP trap")
    assert inspect(docker, name, "{{.State.Status}}") == "running"
    docker("kill", "-s", "SIGHUP", name)
    wait_for(lambda: docker("logs", name).stdout == "ready\nHUP\nHUP\n", "the second HUP")
    docker("kill", name)
    assert docker("wait", name).stdout == "137\n"
    assert inspect(docker, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"


def test_kill_not_running_message(docker, ctr) -> None:
    """moby@v28.2.2 api/server/router/container/container_routes.go:postContainersKill wraps
    every error as "cannot kill container: <name>: <err>"."""
    name = ctr()
    cid = docker("create", "--name", name, "busybox").stdout.strip()
    r = docker("kill", name, check=False)
    assert r.returncode == 1
    assert r.stderr == (f"Error response from daemon: cannot kill container: {name}: "
                        f"container {cid} is not running\n")


def test_kill_invalid_signal_message(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "busybox", "sleep", "30")
    r = docker("kill", "-s", "BOGUS", name, check=False)
    assert r.returncode == 1
    assert r.stderr == (f"Error response from daemon: cannot kill container: {name}: "
                        "invalid signal: BOGUS\n")
    assert inspect(docker, name, "{{.State.Status}}") == "running"


def test_restart(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "--init", "busybox", "sleep", "30")
    pid1, started1 = inspect(docker, name, "{{.State.Pid}} {{.State.StartedAt}}").split()
    t0 = time.monotonic()
    assert docker("restart", "-t", "5", name).stdout == f"{name}\n"
    assert time.monotonic() - t0 < 4
    status, pid2, started2, count = inspect(
        docker, name, "{{.State.Status}} {{.State.Pid}} {{.State.StartedAt}} {{.RestartCount}}"
    ).split()
    assert status == "running" and pid2 != pid1 and started2 > started1
    assert count == "0"  # a manual restart is not a policy restart
    # restarting a stopped container starts it
    docker("stop", name)
    docker("restart", name)
    assert inspect(docker, name, "{{.State.Status}}") == "running"


# --- restart policies, --rm ----------------------------------------------------------------------


def test_restart_on_failure_max_retries(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 5")
    wait_for(lambda: inspect(docker, name, "{{.RestartCount}} {{.State.Status}}") == "2 exited",
             "two restarts, then exited", timeout=8)
    time.sleep(1)  # no third attempt
    assert inspect(docker, name, "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}} "
                                 "{{json .HostConfig.RestartPolicy}}") \
        == 'exited 2 5 {"Name":"on-failure","MaximumRetryCount":2}'


def test_restart_on_failure_not_after_success(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "--restart", "on-failure", "busybox", "true")
    docker("wait", name)
    time.sleep(0.5)
    assert inspect(docker, name, "{{.State.Status}} {{.RestartCount}}") == "exited 0"


def test_restart_always_then_stop_stays_stopped(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "--restart", "always", "busybox", "sleep", "30")
    docker("stop", "-t", "0", name)
    time.sleep(1)
    assert inspect(docker, name, "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}") \
        == "exited 0 137"
    # `docker start` brings it back, policy intact: a death not asked for restarts it
    docker("start", name)
    os.kill(int(inspect(docker, name, "{{.State.Pid}}")), signal.SIGKILL)
    wait_for(lambda: inspect(docker, name, "{{.RestartCount}} {{.State.Status}}")
             == "1 running", "a policy restart")


@pytest.mark.parametrize("sig", ["KILL", "HUP"])
def test_restart_always_not_after_docker_kill(docker, ctr, sig) -> None:
    """dockerd marks the container ExitOnNext on `docker kill` (any signal when no
    StopSignal is set: moby@v28.2.2 daemon/kill.go:killWithSignal), so the policy does not
    restart it after that exit."""
    name = ctr()
    run_d(docker, "--name", name, "--restart", "always", "busybox", "sh", "-c",
          "trap 'exit 3' HUP; echo ready; while true; do sleep 0.1; done")
    wait_for(lambda: "ready" in docker("logs", name).stdout, "the trap to be set")
    docker("kill", "-s", sig, name)
    docker("wait", name)
    time.sleep(1)
    assert inspect(docker, name, "{{.State.Status}} {{.RestartCount}}") == "exited 0"


def test_restart_always_shows_restarting_between_attempts(docker, ctr) -> None:
    """dockerd: State.Status `restarting`, Running=true, ps `Restarting (1) … ago`, while the
    policy's back-off delay runs (moby@v28.2.2 container/state.go:State.String)."""
    name = ctr()
    run_d(docker, "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 1")
    wait_for(lambda: int(inspect(docker, name, "{{.RestartCount}}")) >= 4,
             "four restarts", timeout=8)   # back-off now ≥ 1.6 s
    time.sleep(0.2)
    assert inspect(docker, name, "{{.State.Status}} {{.State.Restarting}}") == "restarting true"
    status = docker("ps", "--filter", f"name=^{name}$", "--format", "{{.Status}}").stdout
    assert re.fullmatch(r"Restarting \(1\) (Less than a second|\d+ seconds?) ago\n", status), \
        status


def test_restart_always_stopped_during_backoff_stays_stopped(docker, ctr) -> None:
    """`docker stop` while the policy waits to restart: dockerd cancels the restart."""
    name = ctr()
    run_d(docker, "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 1")
    # after the 3rd restart the back-off is 0.8 s: catch the container inside it
    def waiting_to_restart() -> bool:
        count, pid = inspect(docker, name, "{{.RestartCount}} {{.State.Pid}}").split()
        return int(count) >= 3 and pid == "0"

    wait_for(waiting_to_restart, "the container waiting to restart", timeout=8)
    docker("stop", "-t", "1", name)
    count = inspect(docker, name, "{{.RestartCount}}")
    time.sleep(2.5)
    assert inspect(docker, name, "{{.State.Status}} {{.RestartCount}}") == f"exited {count}"


def test_rm_force_during_a_policy_restart_leaves_no_cgroup(docker, busybox_image) -> None:
    """`docker rm -f` while the restart policy is (re)starting the container: nothing of it
    may stay behind. Timing-dependent: tries a spread of delays, fails at the first leak."""
    for attempt in range(12):
        cid = run_d(docker, "--restart", "always", "busybox", "sh", "-c", "exit 1")
        time.sleep(0.08 + 0.02 * attempt)
        docker("rm", "-f", cid)
        deadline = time.monotonic() + 1
        while (left := cgroup_leftovers({cid})) and time.monotonic() < deadline:
            time.sleep(0.05)
        for path in left:  # empty ones only: rmdir refuses a cgroup that has processes
            with contextlib.suppress(OSError):
                os.rmdir(path)
        assert not left, f"attempt {attempt}: cgroups of a removed container: {left}"


def test_rm_flag_removes_after_exit(docker, unique_name, busybox_image) -> None:
    name = unique_name()
    try:
        since = time.time()
        cid = run_d(docker, "--rm", "--name", name, "busybox", "sh", "-c", "sleep 0.5; exit 3")
        assert docker("wait", cid).stdout == "3\n"
        wait_for(lambda: docker("ps", "-aq", "--filter", f"id={cid}").stdout == "",
                 "the --rm container to go")
        r = docker("inspect", cid, check=False)
        assert r.returncode == 1 and r.stderr == f"Error: No such object: {cid}\n"
        assert [e.split()[0] for e in events(docker, since, f"container={cid}")] \
            == ["create", "start", "die", "destroy"]
    finally:
        docker("rm", "-f", name, check=False)


# --- pause, rename, rm ---------------------------------------------------------------------------


def test_pause_unpause(docker, ctr) -> None:
    name = ctr()
    cid = run_d(docker, "--name", name, "busybox", "sleep", "30")
    assert docker("pause", name).stdout == f"{name}\n"
    row = docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}|{{.State}}").stdout
    assert re.fullmatch(UP + r" \(Paused\)\|paused\n", row), row
    assert docker("ps", "-q", "--filter", "status=paused", "--filter", f"id={cid}").stdout \
        == cid[:12] + "\n"
    assert inspect(docker, name, "{{.State.Status}} {{.State.Paused}} {{.State.Running}}") \
        == "paused true true"
    freezer = CGROUP_ROOT / "freezer" / CGROUP_PARENT / cid / "freezer.state"
    if freezer.exists():
        assert freezer.read_text().strip() == "FROZEN"
    r = docker("pause", name, check=False)
    assert (r.returncode, r.stderr) == (
        1, f"Error response from daemon: Container {cid} is already paused\n")
    r = docker("rm", name, check=False)
    assert (r.returncode, r.stderr) == (
        1, f'Error response from daemon: cannot remove container "/{name}": container is '
           "paused and must be unpaused first\n")
    assert docker("unpause", name).stdout == f"{name}\n"
    assert inspect(docker, name, "{{.State.Status}} {{.State.Paused}}") == "running false"
    if freezer.exists():
        assert freezer.read_text().strip() == "THAWED"
    r = docker("unpause", name, check=False)
    assert (r.returncode, r.stderr) == (
        1, f"Error response from daemon: Container {cid} is not paused\n")
    # a paused container can be stopped
    docker("pause", name)
    docker("stop", "-t", "0", name)
    assert inspect(docker, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"


def test_pause_stopped_container(docker, ctr) -> None:
    """moby@v28.2.2 container/container.go:GetRunningTask, unwrapped by the pause route."""
    name = ctr()
    cid = docker("create", "--name", name, "busybox").stdout.strip()
    r = docker("pause", name, check=False)
    assert (r.returncode, r.stderr) == (
        1, f"Error response from daemon: container {cid} is not running\n")


def test_rename(docker, ctr) -> None:
    old, new, other = ctr(), ctr(), ctr()
    since = time.time()
    cid = run_d(docker, "--name", old, "--label", "k=v", "busybox", "sleep", "30")
    other_id = docker("create", "--name", other, "busybox").stdout.strip()
    assert docker("rename", old, new).stdout == ""
    assert inspect(docker, new, "{{.Name}} {{.Id}}") == f"/{new} {cid}"
    r = docker("inspect", "--type", "container", old, check=False)
    assert r.returncode == 1
    assert r.stderr == f"Error response from daemon: No such container: {old}\n"
    r = docker("rename", new, new, check=False)
    assert r.stderr == ("Error response from daemon: Renaming a container with the same name "
                        f"as its current name\nError: failed to rename container named {new}\n")
    r = docker("rename", new, other, check=False)
    assert r.returncode == 1 and "Conflict. The container name" in r.stderr
    assert inspect(docker, other, "{{.Id}}") == other_id
    r = docker("rename", new, "bad#name", check=False)
    assert r.returncode == 1 and "Invalid container name" in r.stderr
    assert inspect(docker, cid, "{{.Name}}") == f"/{new}"
    assert f"rename (image=busybox, k=v, name={new}, oldName=/{old})" \
        in events(docker, since, f"container={cid}")
    # the old name is free again
    docker("create", "--name", old, "busybox")


def test_rename_conflict_message(docker, ctr) -> None:
    a, b = ctr(), ctr()
    docker("create", "--name", a, "busybox")
    bid = docker("create", "--name", b, "busybox").stdout.strip()
    # moby@v28.2.2 daemon/rename.go: errors.Wrap(err, "Error when allocating new name")
    r = docker("rename", a, b, check=False)
    assert r.returncode == 1
    assert r.stderr == (
        "Error response from daemon: Error when allocating new name: Conflict. The container "
        f'name "/{b}" is already in use by container "{bid}". You have to remove (or '
        "rename) that container to be able to reuse that name.\n"
        f"Error: failed to rename container named {a}\n")


def test_rm_running_and_force(docker, ctr, daemon) -> None:
    name = ctr()
    cid = run_d(docker, "--name", name, "busybox", "sleep", "30")
    r = docker("rm", name, check=False)
    assert r.returncode == 1
    assert r.stderr == (f'Error response from daemon: cannot remove container "/{name}": '
                        "container is running: stop the container before removing or force "
                        "remove\n")
    assert inspect(docker, name, "{{.State.Status}}") == "running"
    assert docker("rm", "-f", name).stdout == f"{name}\n"
    assert docker("ps", "-aq", "--filter", f"id={cid}").stdout == ""
    assert_no_leftovers(daemon, docker, {cid})
    # -f on a missing container: the CLI prints the 404 but succeeds
    r = docker("rm", "-f", name, check=False)
    assert (r.returncode, r.stderr) == (0, f"Error response from daemon: No such container: "
                                           f"{name}\n")
    r = docker("rm", name, check=False)
    assert (r.returncode, r.stderr) == (1, f"Error response from daemon: No such container: "
                                           f"{name}\n")


def test_id_prefix_lookup(docker, ctr) -> None:
    name = ctr()
    cid = docker("create", "--name", name, "busybox").stdout.strip()
    assert inspect(docker, cid[:12], "{{.Name}}") == f"/{name}"
    assert inspect(docker, "/" + name, "{{.Id}}") == cid


# --- ps ------------------------------------------------------------------------------------------


def test_ps_listing_and_filters(docker, ctr) -> None:
    label = f"dpy.ps={ctr('label')}"
    q1, q2, q3 = ctr(), ctr(), ctr()
    id1 = docker("create", "--name", q1, "--label", label, "busybox").stdout.strip()
    id2 = run_d(docker, "--name", q2, "--label", label, "busybox", "sh", "-c", "exit 3")
    id3 = run_d(docker, "--name", q3, "--label", label, "busybox", "sleep", "30")
    docker("wait", q2)
    f = ["--filter", f"label={label}"]

    def names(*args: str) -> list[str]:
        return docker("ps", *args, *f, "--format", "{{.Names}}").stdout.split()

    assert names() == [q3]
    assert names("-a") == [q3, q2, q1]
    rows = docker("ps", "-a", *f, "--format", "{{.Names}}|{{.Status}}|{{.State}}").stdout
    assert re.fullmatch(
        rf"{q3}\|{UP}\|running\n{q2}\|Exited \(3\) (Less than a second|\d+ seconds?) ago\|exited\n"
        rf"{q1}\|Created\|created\n", rows), rows
    assert docker("ps", "-aq", *f).stdout == f"{id3[:12]}\n{id2[:12]}\n{id1[:12]}\n"
    assert docker("ps", "-aq", "--no-trunc", *f).stdout == f"{id3}\n{id2}\n{id1}\n"
    # -n / -l count from the newest container of all (ours are the newest)
    assert docker("ps", "-n", "2", "--format", "{{.Names}}").stdout.split() == [q3, q2]
    assert docker("ps", "-l", "--format", "{{.Names}}").stdout.split() == [q3]
    assert names("-a", "--filter", "status=exited") == [q2]
    assert names("-a", "--filter", "status=created") == [q1]
    assert names("-a", "--filter", "status=running") == [q3]
    assert names("-a", "--filter", "status=created", "--filter", "status=exited") == [q2, q1]
    assert names("-a", "--filter", "exited=3") == [q2]
    assert names("-a", "--filter", "exited=0") == []
    assert names("-a", "--filter", f"name={q2}") == [q2]
    assert names("-a", "--filter", f"name=^/{q1}$") == [q1]
    assert names("-a", "--filter", f"id={id3[:10]}") == [q3]
    assert names("-a", "--filter", "ancestor=busybox") == [q3, q2, q1]
    image_id = docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    assert names("-a", "--filter", f"ancestor={image_id}") == [q3, q2, q1]
    assert names("-a", "--filter", f"ancestor={image_id[7:19]}") == [q3, q2, q1]
    assert names("-a", "--filter", f"before={q2}") == [q1]
    assert names("-a", "--filter", f"since={q2}") == [q3]
    assert names("-a", "--filter", f"since={q1}", "--filter", f"before={q3}") == [q2]
    assert docker("ps", "-a", *f, "--no-trunc", "--format", "{{.Image}} {{.Command}}").stdout \
        .splitlines()[0::2] == ['busybox "sleep 30"', 'busybox "sh"']
    table = docker("ps", "-a", *f).stdout.splitlines()
    assert re.match(r"^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES$", table[0])
    assert len(table) == 4 and table[1].startswith(id3[:12] + "   busybox ")
    assert table[1].endswith(q3)


def test_ps_ancestor_filter_resolves_references(docker, ctr) -> None:
    """dockerd resolves each ancestor value to an image (and its children), then compares
    image IDs (moby@v28.2.2 daemon/list.go): any reference to the image matches."""
    label = f"dpy.anc={ctr('label')}"
    name = ctr()
    docker("create", "--name", name, "--label", label, "busybox")
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox",
                "docker.io/library/busybox:latest"):
        assert docker("ps", "-a", "--filter", f"label={label}", "--filter", f"ancestor={ref}",
                      "--format", "{{.Names}}").stdout == f"{name}\n", ref


def test_ps_command_quotes_args_with_spaces(docker, ctr) -> None:
    """moby@v28.2.2 container/view.go: an argument containing a space is wrapped in '…'."""
    name = ctr()
    docker("create", "--name", name, "busybox", "sh", "-c", "exit 3")
    assert docker("ps", "-a", "--filter", f"name=^{name}$", "--no-trunc", "--format",
                  "{{.Command}}").stdout == "\"sh -c 'exit 3'\"\n"


def test_ps_filter_errors(docker, busybox_image) -> None:
    r = docker("ps", "--filter", "bogus=1", check=False)
    assert (r.returncode, r.stderr) == (1, "Error response from daemon: invalid filter 'bogus'\n")
    r = docker("ps", "--filter", "since=no-such-ctr-dpy", check=False)
    assert (r.returncode, r.stderr) == (
        1, "Error response from daemon: No such container: no-such-ctr-dpy\n")


def test_container_prune(docker, ctr) -> None:
    label = f"dpy.prune={ctr('label')}"
    a, b, c = ctr(), ctr(), ctr()
    ida = run_d(docker, "--name", a, "--label", label, "busybox", "true")
    idb = docker("create", "--name", b, "--label", label, "busybox").stdout.strip()
    run_d(docker, "--name", c, "--label", label, "busybox", "sleep", "30")
    docker("wait", a)
    out = docker("container", "prune", "-f", "--filter", f"label={label}").stdout
    assert out.startswith("Deleted Containers:\n") and out.endswith(
        "\nTotal reclaimed space: 0B\n"), out
    assert set(out.split("\n")[1:3]) == {ida, idb}
    assert docker("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}").stdout \
        == f"{c}\n"
    out = docker("container", "prune", "-f", "--filter", f"label={label}").stdout
    assert out == "Total reclaimed space: 0B\n"


# --- inspect -------------------------------------------------------------------------------------


def test_inspect_fields(docker, ctr, host_dir) -> None:
    name = ctr()
    docker("create", "--name", name, "--restart", "on-failure:3", "-v", f"{host_dir}:/data",
           "busybox", "echo", "hi")
    got = json.loads(docker("inspect", name).stdout)
    assert len(got) == 1
    c = got[0]
    image_id = docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    assert c["Name"] == f"/{name}"
    assert c["Image"] == image_id               # the image ID, not the name
    assert c["Config"]["Image"] == "busybox"    # the name as given
    assert c["Config"]["Cmd"] == ["echo", "hi"]
    assert c["Path"] == "echo" and c["Args"] == ["hi"]
    assert c["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert c["Mounts"] == [{"Type": "bind", "Source": str(host_dir), "Destination": "/data",
                            "Mode": "", "RW": True, "Propagation": "rprivate"}]
    assert c["State"]["Status"] == "created" and c["RestartCount"] == 0
    assert RFC3339NANO.match(c["Created"])
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath",
                "HostnamePath", "HostsPath", "LogPath", "Name", "RestartCount", "Driver",
                "Platform", "MountLabel", "ProcessLabel", "AppArmorProfile", "ExecIDs",
                "HostConfig", "GraphDriver", "Mounts", "Config", "NetworkSettings"):
        assert key in c, key
    for key in ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid",
                "ExitCode", "Error", "StartedAt", "FinishedAt"):
        assert key in c["State"], key
    assert docker("container", "inspect", "-f", "{{.Name}}", name).stdout == f"/{name}\n"


# --- events --------------------------------------------------------------------------------------


def test_events_lifecycle(docker, ctr) -> None:
    a, b = ctr(), ctr()
    since = time.time()
    cid = run_d(docker, "--name", a, "--label", "lk=lv", "busybox", "sh", "-c",
                "trap 'exit 3' USR1; while true; do sleep 0.1; done")
    docker("pause", a)
    docker("unpause", a)
    docker("rename", a, b)
    docker("kill", "-s", "USR1", b)
    assert docker("wait", b).stdout == "3\n"
    docker("start", b)
    docker("stop", "-t", "1", b)   # sh as pid 1 ignores SIGTERM
    docker("rm", b)
    got = [re.sub(r"execDuration=\d+, ", "", e) for e in events(docker, since,
                                                                "type=container",
                                                                f"container={cid}")]
    at = f"image=busybox, lk=lv, name={a}"
    bt = f"image=busybox, lk=lv, name={b}"
    assert got == [f"create ({at})", f"start ({at})", f"pause ({at})", f"unpause ({at})",
                   f"rename ({bt}, oldName=/{a})", f"kill ({bt}, signal=10)",
                   f"die (exitCode=3, {bt})", f"start ({bt})", f"kill ({bt}, signal=15)",
                   f"kill ({bt}, signal=9)", f"die (exitCode=137, {bt})", f"stop ({bt})",
                   f"destroy ({bt})"]


def test_stop_zero_timeout_sends_the_stop_signal_first(docker, ctr) -> None:
    """`docker stop -t 0`: dockerd still sends the stop signal, then SIGKILL without waiting
    (moby@v28.2.2 daemon/stop.go:containerStop)."""
    name = ctr()
    since = time.time()
    cid = run_d(docker, "--name", name, "busybox", "sleep", "30")
    docker("stop", "-t", "0", name)
    got = [e.split(" (")[0] + (" 15" if "signal=15" in e else " 9" if "signal=9" in e else "")
           for e in events(docker, since, f"container={cid}")]
    assert got == ["create", "start", "kill 15", "kill 9", "die", "stop"]


def test_events_die_has_exit_code_and_duration(docker, ctr) -> None:
    name = ctr()
    since = time.time()
    cid = run_d(docker, "--name", name, "busybox", "sh", "-c", "sleep 1.1; exit 4")
    docker("wait", name)
    out = docker("events", "--since", f"{since:.6f}", "--until", f"{time.time():.6f}",
                 "--filter", f"container={cid}", "--filter", "event=die",
                 "--format", "{{json .}}").stdout
    ev = json.loads(out)
    assert ev["Type"] == "container" and ev["Action"] == "die" and ev["Actor"]["ID"] == cid
    assert ev["Actor"]["Attributes"] == {"exitCode": "4", "execDuration": "1",
                                         "image": "busybox", "name": name}
    assert ev["scope"] == "local" and ev["time"] == ev["timeNano"] // 10**9
    assert since - 1 < ev["time"] <= time.time()


# --- images in use -------------------------------------------------------------------------------


def test_rmi_conflicts_with_containers(docker, ctr, busybox_tar, unique_name) -> None:
    alias = unique_name("img")
    image_id = docker("import", "-c", 'CMD ["sh"]', "-m", alias, busybox_tar, alias) \
        .stdout.strip()
    short = image_id.split(":")[1][:12]
    try:
        stopped = ctr()
        sid = docker("create", "--name", stopped, alias).stdout.strip()
        r = docker("rmi", alias, check=False)
        assert r.returncode == 1
        assert r.stderr == ("Error response from daemon: conflict: unable to remove repository "
                            f'reference "{alias}" (must force) - container {sid[:12]} is using '
                            f"its referenced image {short}\n")
        r = docker("rmi", image_id, check=False)
        assert r.stderr == (f"Error response from daemon: conflict: unable to delete {short} "
                            "(must be forced) - image is being used by stopped container "
                            f"{sid[:12]}\n")
        running = ctr()
        rid = run_d(docker, "--name", running, alias, "sleep", "30")
        r = docker("rmi", "-f", image_id, check=False)
        assert r.stderr == (f"Error response from daemon: conflict: unable to delete {short} "
                            "(cannot be forced) - image is being used by running container "
                            f"{rid[:12]}\n")
        # -f on the name only untags while a container runs
        assert docker("rmi", "-f", alias).stdout == f"Untagged: {alias}:latest\n"
        assert inspect(docker, running, "{{.State.Status}} {{.Image}}") == f"running {image_id}"
        docker("rm", "-f", running)
        docker("rm", stopped)
    finally:
        docker("rmi", "-f", image_id, check=False)


def test_ps_shows_image_id_once_the_name_is_gone(docker, ctr, busybox_tar, unique_name) -> None:
    """moby@v28.2.2 daemon/list.go:refreshImage: when the reference a container was created
    from no longer resolves to its image, `Image` becomes the image ID (the CLI shortens it)."""
    alias = unique_name("img")
    image_id = docker("import", "-c", 'CMD ["sh"]', "-m", alias, busybox_tar, alias) \
        .stdout.strip()
    try:
        name = ctr()
        cid = docker("create", "--name", name, alias).stdout.strip()
        docker("tag", alias, alias + ":keep")
        docker("rmi", alias)
        assert docker("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Image}}").stdout \
            == f"{image_id[7:19]}\n"
        assert inspect(docker, name, "{{.Config.Image}}") == alias
    finally:
        docker("rmi", "-f", image_id, check=False)


def test_rmi_force_with_stopped_container(docker, ctr, busybox_tar, unique_name) -> None:
    alias = unique_name("img")
    image_id = docker("import", "-c", 'CMD ["sh"]', "-m", alias, busybox_tar, alias) \
        .stdout.strip()
    try:
        name = ctr()
        docker("create", "--name", name, alias)
        out = docker("rmi", "-f", alias).stdout
        assert out.startswith(f"Untagged: {alias}:latest\nDeleted: {image_id}\n"), out
        assert inspect(docker, name, "{{.Image}} {{.State.Status}}") == f"{image_id} created"
    finally:
        docker("rmi", "-f", image_id, check=False)


# --- bad input leaves nothing half-created -------------------------------------------------------


BAD_INPUT = {
    "restart-policy": (["--restart", "bogus"],
                       "Error response from daemon: invalid restart policy: unknown policy "
                       "'bogus'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
    "restart-count": (["--restart", "always:3"],
                      "Error response from daemon: invalid restart policy: maximum retry count "
                      "can only be used with 'on-failure'"),
    "restart-rm": (["--restart", "always", "--rm"],
                   "docker: conflicting options: cannot specify both --restart and --rm"),
    "mode": (["-v", "/tmp:/x:zz"], "Error response from daemon: invalid mode: zz"),
    "relative-dest": (["-v", "/tmp:relative"],
                      "Error response from daemon: invalid volume specification: "
                      "'/tmp:relative': invalid mount config for type \"bind\": invalid mount "
                      "path: 'relative' mount path must be absolute"),
    "bind-missing": (["--mount", "type=bind,src=/nonexistent-dpy,dst=/x"],
                     "Error response from daemon: invalid mount config for type \"bind\": bind "
                     "source path does not exist: /nonexistent-dpy"),
    "tmpfs-relative": (["--tmpfs", "relative"],
                       "Error response from daemon: invalid mount path: 'relative' mount path "
                       "must be absolute"),
    "tmpfs-root": (["--tmpfs", "/"],
                   "Error response from daemon: invalid specification: destination can't be '/'"),
    "runtime": (["--runtime", "nosuch"],
                "Error response from daemon: unknown or invalid runtime name: nosuch"),
    "ulimit": (["--ulimit", "nofile=999999:999999"], "nofile"),
    "oom-score-adj": (["--oom-score-adj", "-500"], "oom"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_leaves_nothing(docker, daemon, busybox_image, unique_name, case) -> None:
    args, message = BAD_INPUT[case]
    name = unique_name()
    before_ids = container_ids(docker)
    before = runtime_artifacts(daemon)
    before_runc = runc_list(daemon)
    before_snapshots = set(os.listdir(Path(daemon.data_root) / "snapshots"))
    try:
        for cmd in (["run", "-d"], ["create"]):
            r = docker(*cmd, "--name", name, *args, "busybox", "true", check=False)
            client_side = case == "restart-rm"
            assert r.returncode == (125 if cmd[0] == "run" or client_side else 1), r
            assert r.stdout == ""
            first = r.stderr.splitlines()[0]
            if message == "nofile":
                # no Docker wording to copy (dockerd fails in runc): clear and to the point
                assert first.startswith("docker: Error response from daemon: ") or \
                    first.startswith("Error response from daemon: "), first
                assert "nofile" in first and "20000" in first, first
            elif message == "oom":
                assert "Error response from daemon: " in first, first
                assert "oom-score-adj" in first.lower() and "-500" in first, first
            else:
                assert first in (message, "docker: " + message), r.stderr
        assert container_ids(docker) == before_ids
        assert runtime_artifacts(daemon) == before
        assert runc_list(daemon) == before_runc
        new = set(os.listdir(Path(daemon.data_root) / "snapshots")) - before_snapshots
        assert not new, f"snapshots left behind: {new}"
    finally:
        docker("rm", "-f", name, check=False)


# --- docker-py -----------------------------------------------------------------------------------


def test_dockerpy_lifecycle(dockerpy, docker, unique_name, busybox_image) -> None:
    name = unique_name()
    c = dockerpy.containers.run("busybox", ["sh", "-c", "echo o; echo e >&2; exit 4"],
                                detach=True, name=name, labels={"dpy": name},
                                environment={"A": "1"})
    try:
        assert c.wait() == {"StatusCode": 4, "Error": None}
        assert c.logs(stdout=True, stderr=False) == b"o\n"
        assert c.logs(stdout=False, stderr=True) == b"e\n"
        c.reload()
        assert (c.status, c.attrs["State"]["ExitCode"], c.name) == ("exited", 4, name)
        assert c.labels == {"dpy": name} and c.image.tags == ["busybox:latest"]
        assert "A=1" in c.attrs["Config"]["Env"]
        assert [x.name for x in dockerpy.containers.list(all=True,
                                                          filters={"label": f"dpy={name}"})] \
            == [name]
        c.remove()
        c = dockerpy.containers.run("busybox", "sleep 30", detach=True, name=name)
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        c.stop(timeout=0)
        c.reload()
        assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 137)
        c.start()
        c.kill(signal="SIGTERM")  # sleep as pid 1 ignores it: still running
        time.sleep(0.2)
        c.reload()
        assert c.status == "running"
        c.remove(force=True)
        assert dockerpy.containers.list(all=True, filters={"name": f"^{name}$"}) == []
    finally:
        docker("rm", "-f", name, check=False)
