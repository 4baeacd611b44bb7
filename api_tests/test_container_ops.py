"""Container operations through the stock CLI and docker-py: top, stats, update, health
checks, log rotation. Every container is real (conmon + runc).

Expected behaviour follows dockerd 28 (moby daemon/top_unix.go, stats.go, update.go,
health.go, container/container_unix.go UpdateContainer) and the 28.2 CLI's rendering
(cli/command/container/stats_helpers.go).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ID64 = re.compile(r"^[0-9a-f]{64}$")
RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
ZERO_TIME = "0001-01-01T00:00:00Z"
BUSY = "while :; do :; done"
CGROUP_V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")


# --- helpers -------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}", pytrace=False)
        time.sleep(0.1)


def inspect(docker, ref: str, template: str = "{{json .}}") -> str:
    return docker("inspect", "-f", template, ref).stdout.rstrip("\n")


def run_d(docker, *args: object) -> str:
    out = docker("run", "-d", *args).stdout.strip()
    assert ID64.match(out), out
    return out


def cgroup_file(pid: int, controller: str, name: str) -> Path:
    """A file of the cgroup process `pid` is in (v1: that controller's hierarchy)."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if CGROUP_V2 and controllers == "":
                return Path("/sys/fs/cgroup") / path.lstrip("/") / name
            if not CGROUP_V2 and controller in controllers.split(","):
                return Path("/sys/fs/cgroup") / controller / path.lstrip("/") / name
    raise AssertionError(f"process {pid} has no {controller} cgroup")


def cgroup_limits(pid: int) -> dict[str, str]:
    """memory, memory+swap, cpu quota, pids limit, as the kernel has them."""
    if CGROUP_V2:
        mem = cgroup_file(pid, "", "memory.max").read_text().strip()
        swap = cgroup_file(pid, "", "memory.swap.max").read_text().strip()
        memsw = str(int(mem) + int(swap)) if mem.isdigit() and swap.isdigit() else "max"
        quota = cgroup_file(pid, "", "cpu.max").read_text().split()[0]
        return {"memory": mem, "memsw": memsw, "cpu_quota": quota,
                "pids": cgroup_file(pid, "", "pids.max").read_text().strip()}
    return {
        "memory": cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text().strip(),
        "memsw": cgroup_file(pid, "memory", "memory.memsw.limit_in_bytes").read_text().strip(),
        "cpu_quota": cgroup_file(pid, "cpu", "cpu.cfs_quota_us").read_text().strip(),
        "pids": cgroup_file(pid, "pids", "pids.max").read_text().strip(),
    }


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def online_cpus() -> int:
    with open("/proc/stat") as f:
        return sum(1 for line in f if re.match(r"^cpu\d+ ", line))


def event_actions(docker, since: float, name: str) -> list[str]:
    out = docker("events", "--since", f"{since:.6f}", "--until", f"{time.time():.6f}",
                 "--filter", f"container={name}", "--format", "{{.Action}}", timeout=30).stdout
    return out.splitlines()


def health(docker, name: str) -> dict[str, Any]:
    return json.loads(inspect(docker, name, "{{json .State.Health}}"))


# --- fixtures ------------------------------------------------------------------------------------




# --- top -----------------------------------------------------------------------------------------


def test_top_default_ps_args_and_custom_columns(docker, ctr, dockerpy) -> None:
    name = ctr()
    run_d(docker, "--name", name, "busybox", "sleep", "1000")
    docker("exec", "-d", name, "sleep", "999")
    pid = int(inspect(docker, name, "{{.State.Pid}}"))
    wait_for(lambda: "sleep 999" in docker("top", name).stdout, "the exec in top")

    lines = docker("top", name).stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    assert sorted(r[-1] for r in rows) == ["sleep 1000", "sleep 999"]
    assert str(pid) in {r[1] for r in rows}
    assert all(r[0] == "root" for r in rows)  # nothing of the host's own processes

    aux = docker("top", name, "aux").stdout.splitlines()
    assert aux[0].split()[:2] == ["USER", "PID"] and aux[0].split()[-1] == "COMMAND"
    assert len(aux) == 3

    # Own columns: dockerd puts -opid in front to match rows, and drops that column again.
    custom = docker("top", name, "-o", "comm,args").stdout.splitlines()
    assert custom[0].split() == ["COMMAND", "COMMAND"]
    assert sorted(line.split(None, 1)[1].strip() for line in custom[1:]) == \
        ["sleep 1000", "sleep 999"]

    # A listing ps cannot combine with a pid list (-q): filtered by the daemon instead.
    forest = docker("top", name, "-eH").stdout.splitlines()
    assert forest[0].split() == ["PID", "TTY", "TIME", "CMD"] and len(forest) == 3

    top = dockerpy.containers.get(name).top()
    assert top["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert len(top["Processes"]) == 2 and all(len(p) == 8 for p in top["Processes"])
    assert [p for p in top["Processes"] if p[1] == str(pid)][0][7] == "sleep 1000"


def test_top_errors(docker, ctr) -> None:
    name = ctr()
    cid = run_d(docker, "--name", name, "busybox", "sleep", "1000")
    bad = docker("top", name, "--no-such-option", check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error response from daemon: ps: "), bad.stderr
    docker("kill", name)
    docker("wait", name)
    stopped = docker("top", name, check=False)
    assert stopped.returncode == 1
    assert stopped.stderr.strip() == f"Error response from daemon: Container {cid} is not running"
    missing = docker("top", name + "-nope", check=False)
    assert "No such container" in missing.stderr


# --- stats ---------------------------------------------------------------------------------------


def test_stats_no_stream_cli(docker, ctr) -> None:
    busy, idle = ctr("busy"), ctr("idle")
    run_d(docker, "--name", busy, "--memory", "64m", "busybox", "sh", "-c", BUSY)
    run_d(docker, "--name", idle, "busybox", "sleep", "1000")
    start = time.monotonic()
    out = docker("stats", "--no-stream", "--format", "{{json .}}", busy, idle).stdout
    elapsed = time.monotonic() - start
    rows = {r["Name"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == {busy, idle}
    assert elapsed < 5, f"--no-stream took {elapsed:.1f}s"
    b, i = rows[busy], rows[idle]
    assert float(b["CPUPerc"].rstrip("%")) > 1.0, b     # a busy loop on a (shared) CPU
    assert float(i["CPUPerc"].rstrip("%")) < 5.0, i
    used, limit = b["MemUsage"].split(" / ")
    assert limit == "64MiB" and re.match(r"^\d+(\.\d+)?(B|KiB|MiB)$", used), b
    assert b["PIDs"] == "1" and i["PIDs"] == "1"
    assert i["MemUsage"].endswith(" / " + human_iec(host_memory())), i
    # the networks section: the bridge's traffic so far (router solicitations, ARP)
    assert re.fullmatch(r"\d+(\.\d+)?(B|kB|MB) / \d+(\.\d+)?(B|kB|MB)", b["NetIO"]), b


def human_iec(n: int) -> str:
    """go-units BytesSize with the CLI's precision (e.g. 23.54GiB)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, i = float(n), 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.4g}{units[i]}"


def test_stats_api_two_samples_one_shot_and_stopped(docker, ctr, dockerpy) -> None:
    name = ctr()
    cid = run_d(docker, "--name", name, "busybox", "sh", "-c", BUSY)
    api = dockerpy.api

    s = api.stats(name, stream=False)
    assert s["name"] == "/" + name and s["id"] == cid
    assert RFC3339NANO.match(s["read"]) and RFC3339NANO.match(s["preread"])
    assert s["preread"] != ZERO_TIME and s["preread"] < s["read"]
    cpu, pre = s["cpu_stats"], s["precpu_stats"]
    assert cpu["online_cpus"] == online_cpus()
    assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] > 0
    assert cpu["cpu_usage"]["total_usage"] > pre["cpu_usage"]["total_usage"] > 0
    mem = s["memory_stats"]
    assert 0 < mem["usage"] < 64 << 20
    assert mem["limit"] == host_memory()  # no limit set: the host's MemTotal, as dockerd
    assert ("total_inactive_file" in mem["stats"]) != CGROUP_V2
    assert "inactive_file" in mem["stats"]
    assert s["pids_stats"]["current"] == 1
    assert isinstance(s["blkio_stats"]["io_service_bytes_recursive"], (list, type(None)))
    assert list(s)[:4] == ["name", "id", "read", "preread"]

    one = api.stats(name, stream=False, one_shot=True)
    assert one["preread"] == ZERO_TIME and "system_cpu_usage" not in one["precpu_stats"]
    assert one["cpu_stats"]["system_cpu_usage"] > 0

    import docker as docker_sdk
    with pytest.raises(docker_sdk.errors.APIError) as err:
        api._result(api._get(api._url("/containers/{0}/stats", name),
                             params={"stream": "1", "one-shot": "1"}), json=True)
    assert err.value.status_code == 400
    assert "cannot have stream=true and one-shot=true" in str(err.value)

    docker("kill", name)
    docker("wait", name)
    stopped = api.stats(name, stream=False)
    assert stopped["name"] == "/" + name and stopped["id"] == cid
    assert stopped["read"] == ZERO_TIME and stopped["memory_stats"] == {}
    assert stopped["cpu_stats"]["cpu_usage"]["total_usage"] == 0


def test_stats_stream_docker_py_and_cli(docker, ctr, dockerpy, daemon) -> None:
    name = ctr()
    run_d(docker, "--name", name, "busybox", "sh", "-c", BUSY)
    frames = []
    start = time.monotonic()
    for frame in dockerpy.api.stats(name, stream=True, decode=True):
        frames.append(frame)
        if len(frames) == 3:
            break
    elapsed = time.monotonic() - start
    assert 1.5 < elapsed < 6, elapsed
    assert frames[0]["preread"] == ZERO_TIME
    for before, after in zip(frames, frames[1:], strict=False):
        assert after["preread"] == before["read"]
        assert after["precpu_stats"] == before["cpu_stats"]

    # The live CLI view, for a few seconds; the CLI is killed (it does not stop on SIGTERM).
    cli = subprocess.Popen(["docker", "stats", name], env=daemon.cli_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3)
    finally:
        cli.send_signal(signal.SIGKILL)
        out, err = cli.communicate(timeout=10)
    text = out.decode(errors="replace")
    assert "timeout waiting for stats" not in text, text
    rows = [line for line in re.split(r"[\r\n]", text) if name in line]
    assert len(rows) >= 2, text
    assert re.search(r"\d+\.\d\d%", rows[-1]), rows[-1]
    assert docker("stats", "--no-stream", name).returncode == 0  # daemon still fine


# --- update --------------------------------------------------------------------------------------


def test_update_running_container_limits(docker, ctr, dockerpy) -> None:
    name = ctr()
    cid = run_d(docker, "--name", name, "busybox", "sleep", "1000")
    pid = int(inspect(docker, name, "{{.State.Pid}}"))
    since = time.time()

    # dockerd: a memory limit above the (unset) memory+swap limit needs --memory-swap too.
    alone = docker("update", "--memory", "128m", name, check=False)
    assert alone.returncode == 1
    assert alone.stderr.strip() == (
        f"Error response from daemon: Cannot update container {cid}: Memory limit should be "
        "smaller than already set memoryswap limit, update the memoryswap at the same time")

    out = docker("update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "0.5",
                 "--pids-limit", "50", "--restart", "on-failure:3", name)
    assert out.stdout.strip() == name
    assert cgroup_limits(pid) == {"memory": str(128 << 20), "memsw": str(256 << 20),
                                  "cpu_quota": "50000", "pids": "50"}
    hc = json.loads(inspect(docker, name, "{{json .HostConfig}}"))
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == \
        (128 << 20, 256 << 20, 500_000_000, 50)
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert "update" in event_actions(docker, since, name)
    assert docker("stats", "--no-stream", "--format", "{{.MemUsage}}", name).stdout.strip() \
        .endswith(" / 128MiB")

    # Refusals, in dockerd's words; nothing changes.
    quota = docker("update", "--cpu-quota", "20000", name, check=False)
    assert quota.stderr.strip().endswith("Conflicting options: CPU Quota cannot be updated as "
                                         "NanoCPUs has already been set")
    small = docker("update", "--memory", "1m", "--memory-swap", "2m", name, check=False)
    assert small.stderr.strip() == "Error response from daemon: Minimum memory limit allowed is 6MB"
    assert cgroup_limits(pid)["memory"] == str(128 << 20)

    # Within the swap limit memory alone is fine (docker-py: dockerd's null warnings);
    # --pids-limit -1 lifts the limit (stored as 0, as dockerd).
    assert dockerpy.containers.get(name).update(mem_limit="200m") == {"Warnings": None}
    docker("update", "--pids-limit", "-1", name)
    limits = cgroup_limits(pid)
    assert limits["memory"] == str(200 << 20) and limits["pids"] == "max"
    assert inspect(docker, name, "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}") == \
        f"{200 << 20} 0"


def test_update_stopped_container_applies_at_start(docker, ctr) -> None:
    name = ctr()
    docker("create", "--name", name, "--memory", "64m", "busybox", "sleep", "1000")
    # Within the swap limit dockerd gives a memory limit at create (twice the memory).
    docker("update", "--memory", "96m", "--cpu-shares", "512", name)
    assert inspect(docker, name, "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} "
                                 "{{.HostConfig.CpuShares}}") == f"{96 << 20} {128 << 20} 512"
    docker("start", name)
    pid = int(inspect(docker, name, "{{.State.Pid}}"))
    limits = cgroup_limits(pid)
    assert (limits["memory"], limits["memsw"]) == (str(96 << 20), str(128 << 20))
    assert cgroup_file(pid, "cpu", "cpu.shares" if not CGROUP_V2 else "cpu.weight") \
        .read_text().strip() == ("512" if not CGROUP_V2 else "20")
    bad = docker("update", "--restart", "always", ctr(), check=False)
    assert "No such container" in bad.stderr


def test_update_restart_policy_refused_with_auto_remove(docker, ctr) -> None:
    name = ctr()
    cid = run_d(docker, "--name", name, "--rm", "busybox", "sleep", "1000")
    out = docker("update", "--restart", "always", name, check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"Error response from daemon: Cannot update container {cid}: Restart policy cannot be "
        "updated because AutoRemove is enabled for the container")


# --- health checks -------------------------------------------------------------------------------


def test_health_starting_unhealthy_healthy_events_and_stop(docker, ctr) -> None:
    name = ctr()
    since = time.time()
    run_d(docker, "--name", name, "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
          "--health-retries", "1", "busybox", "sleep", "1000")
    status = docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.strip()
    assert status.endswith("(health: starting)"), status

    wait_for(lambda: health(docker, name)["Status"] == "unhealthy", "unhealthy", 15)
    h = health(docker, name)
    assert h["FailingStreak"] >= 1 and h["Log"][-1]["ExitCode"] == 1
    status = docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.strip()
    assert status.endswith("(unhealthy)"), status

    docker("exec", name, "touch", "/tmp/ok")
    wait_for(lambda: inspect(docker, name, "{{.State.Health.Status}}") == "healthy",
             "healthy", 15)
    h = health(docker, name)
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0
    assert 1 <= len(h["Log"]) <= 5
    entry = h["Log"][-1]
    assert set(entry) == {"Start", "End", "ExitCode", "Output"}
    assert RFC3339NANO.match(entry["Start"]) and entry["Start"] <= entry["End"]
    status = docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.strip()
    assert re.match(r"^Up .* \(healthy\)$", status), status

    actions = event_actions(docker, since, name)
    assert "health_status: unhealthy" in actions and "health_status: healthy" in actions
    assert actions.index("health_status: unhealthy") < actions.index("health_status: healthy")
    assert "exec_create: /bin/sh -c test -f /tmp/ok" in actions

    # Five results at most, and the monitor ends with the container (dockerd: "unhealthy").
    wait_for(lambda: len(health(docker, name)["Log"]) == 5, "five log entries", 20)
    docker("stop", "-t", "1", name)
    assert health(docker, name)["Status"] == "unhealthy"
    time.sleep(1.5)
    assert inspect(docker, name, "{{.State.Status}}") == "exited"
    docker("start", name)
    assert health(docker, name)["Status"] == "starting"


def test_health_timeout_output_cap_and_no_healthcheck(docker, ctr, dockerpy) -> None:
    slow, chatty, none = ctr("slow"), ctr("chatty"), ctr("none")
    run_d(docker, "--name", slow, "--health-cmd", "echo hi; sleep 5", "--health-timeout", "1s",
          "--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "1000")
    dockerpy.containers.run(
        "busybox", ["sleep", "1000"], name=chatty, detach=True,
        healthcheck={"test": ["CMD", "sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a; exit 3"],
                     "interval": 1_000_000_000, "retries": 2})
    run_d(docker, "--name", none, "--no-healthcheck", "busybox", "sleep", "1000")

    wait_for(lambda: health(docker, slow)["Status"] == "unhealthy", "timeout probe", 15)
    entry = health(docker, slow)["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"] in ("Health check exceeded timeout (1s): hi\n",
                               "Health check exceeded timeout (1s)"), entry

    wait_for(lambda: health(docker, chatty)["Status"] == "unhealthy", "two failures", 15)
    h = health(docker, chatty)
    assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 3
    assert h["Log"][-1]["Output"] == "a" * 4096 + "..."

    assert inspect(docker, none, "{{json .State.Health}}") == "null"
    status = docker("ps", "--filter", f"name={none}", "--format", "{{.Status}}").stdout.strip()
    assert "health" not in status


# --- log rotation --------------------------------------------------------------------------------


def test_log_rotation_max_size_max_file(docker, ctr) -> None:
    name = ctr()
    run_d(docker, "--name", name, "--log-opt", "max-size=10k", "--log-opt", "max-file=2",
          "busybox", "sh", "-c", "i=0; while :; do echo line $i; i=$((i+1)); usleep 200; done")
    log_dir = Path(inspect(docker, name, "{{.LogPath}}")).parent
    wait_for(lambda: (log_dir / "container.log.1").exists(), "a rotated file", 15)
    time.sleep(1.5)  # several more rotations
    docker("kill", name)
    docker("wait", name)
    files = sorted(p.name for p in log_dir.iterdir() if p.name.startswith("container.log"))
    assert files == ["container.log", "container.log.1"], files
    sizes = {f: (log_dir / f).stat().st_size for f in files}
    assert sum(sizes.values()) < 3 * 10 * 1024, sizes  # two files of ~10k (+ what raced)

    lines = docker("logs", name).stdout.splitlines()
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers[0] > 0, "the oldest lines were rotated away"
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), \
        "a gap or a reordering across the rotation"
    tail = docker("logs", "--tail", "2", name).stdout.splitlines()
    assert tail == lines[-2:]


# --- pure helpers (no daemon) --------------------------------------------------------------------


@pytest.mark.parametrize(("args", "custom"), [
    ("-ef", False), ("aux", False), ("-eH", False), ("-o pid,comm", True), ("-opid", True),
    ("o pid", True), ("efocmd", True), ("--format cmd", True), ("--format=cmd", True),
    ("-C ocmd", False), ("eUocmd", False), ("-U root -o pid", True), ("--user ocmd", False),
    ("--user=root o pid", True), ("-ef --forest", True),  # dockerd's quirk: the "o" of forest
])
def test_top_custom_fields_as_dockerd(args: str, custom: bool) -> None:
    from dockerd_py.engine.containers.top import custom_fields

    assert custom_fields(args.split(" ")) is custom


def test_top_parse_ps_output_threads_and_overhang() -> None:
    from dockerd_py.engine.containers.top import parse_ps_output

    out = ("  PID TTY      STAT   TIME COMMAND\n"
           "   10 ?        Ss     0:00 sleep 1000 --with args\n"
           "    - -        Ss     0:00 -\n"
           "   11 ?        S      0:00 other\n"
           "    - -        S      0:00 -\n")
    got = parse_ps_output(out, {10}, pid_first=False)
    assert got["Titles"] == ["PID", "TTY", "STAT", "TIME", "COMMAND"]
    assert got["Processes"] == [["10", "?", "Ss", "0:00", "sleep 1000 --with args"],
                                ["-", "-", "Ss", "0:00", "-"]]
    first = parse_ps_output("PID COMMAND\n10 sleep\n12 x\n", {10}, pid_first=True)
    assert first == {"Titles": ["COMMAND"], "Processes": [["sleep"]]}


@pytest.mark.parametrize(("seconds", "text"), [
    (30, "30s"), (1, "1s"), (1.5, "1.5s"), (0.5, "500ms"), (90, "1m30s"), (3600, "1h0m0s"),
    (0.0000015, "1.5µs"), (0, "0s"),
])
def test_health_go_duration(seconds: float, text: str) -> None:
    from dockerd_py.engine.containers.health import go_duration

    assert go_duration(seconds) == text


def test_update_resources_sent_to_the_runtime() -> None:
    from dockerd_py.engine.containers.update import linux_resources, merge, parse_request

    req = parse_request({"Memory": 128 << 20, "MemorySwap": 256 << 20, "NanoCpus": 500_000_000,
                         "PidsLimit": -1, "CpusetCpus": "0", "RestartPolicy": {"Name": ""}})
    assert linux_resources(req) == {
        "memory": {"limit": 128 << 20, "swap": 256 << 20},
        "cpu": {"quota": 50000, "period": 100000, "cpus": "0"}, "pids": {"limit": -1}}
    hc = merge({"Memory": 0, "MemorySwap": 0, "PidsLimit": 100, "RestartPolicy": {"Name": "no"}},
               req)
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == \
        (128 << 20, 256 << 20, 500_000_000, 0)
    assert hc["RestartPolicy"] == {"Name": "no"}  # an empty Name leaves the policy alone
