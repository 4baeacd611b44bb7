"""Live restore: containers outlive the daemon (kill -9 or a clean SIGTERM restart) and are
taken back when it comes up again.

These tests restart the session daemon; each leaves it running and removes what it made.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DOCKER_CLI
from .test_containers_cli import (
    UP,
    assert_no_leftovers,
    check_hygiene_since,
    inspect,
    parse_rfc3339,
    run_d,
    wait_for,
)

TICKER = ("trap 'echo bye; exit 0' TERM; i=0; "
          "while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")


@pytest.fixture(scope="module", autouse=True)
def module_hygiene(daemon, docker) -> Iterator[None]:
    start = time.time()
    yield
    check_hygiene_since(daemon, docker, start)




def ticks(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("tick ")]


def test_kill9_live_restore(daemon, docker, ctr, tmp_path) -> None:
    long, short, always_long, always_short, paused, created, exited, stopped_always, \
        stopped_unless = (ctr() for _ in range(9))
    sig = tmp_path / "sig"   # the short-lived ones end when sig/go appears on the host
    sig.mkdir()
    wait_go = "while [ ! -e /sig/go ]; do sleep 0.05; done"
    ids = {}
    ids[long] = run_d(docker, "--name", long, "busybox", "sh", "-c", TICKER)
    ids[short] = run_d(docker, "--name", short, "-v", f"{sig}:/sig", "busybox", "sh", "-c",
                       f"echo short-lived; {wait_go}; exit 6")
    ids[always_long] = run_d(docker, "--name", always_long, "--restart", "always", "busybox",
                             "sleep", "60")
    ids[always_short] = run_d(docker, "--name", always_short, "--restart", "always", "-v",
                              f"{sig}:/sig", "busybox", "sh", "-c",
                              f"[ -e /sig/ran ] && exec sleep 60; touch /sig/ran; {wait_go}; "
                              "exit 2")
    ids[paused] = run_d(docker, "--name", paused, "busybox", "sleep", "60")
    docker("pause", paused)
    ids[created] = docker("create", "--name", created, "busybox", "true").stdout.strip()
    ids[exited] = run_d(docker, "--name", exited, "busybox", "sh", "-c", "exit 9")
    docker("wait", exited)
    for name, policy in ((stopped_always, "always"), (stopped_unless, "unless-stopped")):
        ids[name] = run_d(docker, "--name", name, "--restart", policy, "busybox", "sleep", "60")
        docker("stop", "-t", "0", name)
    wait_for(lambda: ticks(docker("logs", long).stdout), "the first tick")
    wait_for(lambda: (sig / "ran").exists(), "the restart=always container's first run")
    names = (long, always_long, paused, short, always_short)
    pids = {n: inspect(docker, n, "{{.State.Pid}}") for n in names}
    assert all(int(p) > 0 for p in pids.values())

    daemon.stop(signal.SIGKILL)
    down_at = time.time()
    for name in (long, always_long, paused):
        assert Path(f"/proc/{pids[name]}").exists(), f"{name} died with the daemon"
    (sig / "go").touch()  # the short-lived ones exit while the daemon is down
    wait_for(lambda: not any(Path(f"/proc/{pids[n]}").exists() for n in (short, always_short)),
             "the short-lived containers to exit")
    time.sleep(0.5)
    daemon.start()
    up_at = time.time()

    # the long-running one: same process, still Up, its output kept while we were away
    assert inspect(docker, long, "{{.State.Status}} {{.State.Pid}}") == f"running {pids[long]}"
    status = docker("ps", "--filter", f"name=^{long}$", "--format", "{{.Status}}").stdout
    assert status.startswith("Up ") and status != "Up Less than a second\n", status
    seen = ticks(docker("logs", long).stdout)
    assert seen == list(range(len(seen)))            # nothing lost, nothing doubled
    assert len(seen) >= (up_at - down_at) / 0.2 * 0.5  # ticks written while the daemon was down
    assert inspect(docker, always_long, "{{.State.Status}} {{.State.Pid}}") \
        == f"running {pids[always_long]}"

    # the short one exited while the daemon was down: its real exit code and time
    assert inspect(docker, short, "{{.State.Status}} {{.State.ExitCode}}") == "exited 6"
    finished = parse_rfc3339(inspect(docker, short, "{{.State.FinishedAt}}"))
    # FinishedAt comes from the exit file's mtime: the kernel's coarse clock, up to a tick
    # (4 ms at HZ=250) behind time.time(), hence the slack on the lower bound.
    assert down_at - 0.02 < finished < up_at - 0.4, (down_at, finished, up_at)
    assert docker("wait", short).stdout == "6\n"
    assert docker("logs", short).stdout == "short-lived\n"

    # restart=always whose process exited while we were away runs again
    wait_for(lambda: inspect(docker, always_short, "{{.State.Status}}") == "running",
             "the restart=always container to run again", timeout=10)
    assert inspect(docker, always_short, "{{.State.Pid}}") != pids[always_short]

    # paused stays paused, and can be unpaused; created and exited are as they were
    assert inspect(docker, paused, "{{.State.Status}} {{.State.Pid}}") \
        == f"paused {pids[paused]}"
    assert docker("ps", "--filter", f"name=^{paused}$", "--format", "{{.Status}}").stdout \
        .rstrip("\n").endswith("(Paused)")
    docker("unpause", paused)
    assert inspect(docker, paused, "{{.State.Status}}") == "running"
    assert inspect(docker, created, "{{.State.Status}}") == "created"
    assert inspect(docker, exited, "{{.State.Status}} {{.State.ExitCode}}") == "exited 9"
    docker("start", created)
    assert docker("wait", created).stdout == "0\n"
    # as dockerd at start-up: `always` comes back even after a manual stop, `unless-stopped`
    # does not (moby restartmanager.ShouldRestart)
    wait_for(lambda: inspect(docker, stopped_always, "{{.State.Status}}") == "running",
             "the stopped restart=always container to be started", timeout=10)
    assert inspect(docker, stopped_unless, "{{.State.Status}}") == "exited"

    # logs -f on the restored container follows, and ends when it is stopped
    follow = subprocess.Popen([DOCKER_CLI, "logs", "-f", "--tail", "1", long],
                              env=daemon.cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.6)
        t0 = time.monotonic()
        assert docker("stop", long).stdout == f"{long}\n"
        assert time.monotonic() - t0 < 5
        out, err = follow.communicate(timeout=10)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    assert len(ticks(out)) >= 2 and out.endswith("bye\n"), out
    assert inspect(docker, long, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"

    # kill, stop and rm of the other restored ones
    docker("kill", always_long)
    docker("stop", "-t", "1", always_short, stopped_always)
    docker("rm", "-f", *ids)
    assert_no_leftovers(daemon, docker, set(ids.values()))


def test_clean_restart_keeps_containers_running(daemon, docker, ctr) -> None:
    """SIGTERM with live-restore (dockerd-py's default): containers keep running."""
    name = ctr()
    cid = run_d(docker, "--name", name, "busybox", "sh", "-c", TICKER)
    wait_for(lambda: ticks(docker("logs", name).stdout), "the first tick")
    pid = inspect(docker, name, "{{.State.Pid}}")
    started = inspect(docker, name, "{{.State.StartedAt}}")
    daemon.restart()
    assert inspect(docker, name, "{{.State.Status}} {{.State.Pid}} {{.State.StartedAt}}") \
        == f"running {pid} {started}"
    before = len(ticks(docker("logs", name).stdout))
    wait_for(lambda: len(ticks(docker("logs", name).stdout)) > before + 2,
             "more ticks after the restart")
    assert docker("stop", name).stdout == f"{name}\n"
    assert inspect(docker, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    assert docker("logs", "--tail", "1", name).stdout == "bye\n"
    # and the daemon runs new containers as before
    other = ctr()
    run_d(docker, "--name", other, "busybox", "true")
    assert docker("wait", other).stdout == "0\n"
    docker("rm", name, other)
    assert_no_leftovers(daemon, docker, {cid})


def test_kill9_twice_and_ps_after(daemon, docker, ctr) -> None:
    """Two restarts in a row: the records and the monitors stay consistent."""
    name = ctr()
    cid = run_d(docker, "--name", name, "--label", "dpy.restore=1", "busybox", "sleep", "60")
    pid = inspect(docker, name, "{{.State.Pid}}")
    daemon.kill9_and_restart()
    daemon.kill9_and_restart()
    assert docker("ps", "--filter", f"id={cid}", "--format",
                  "{{.Names}}|{{.Labels}}").stdout == f"{name}|dpy.restore=1\n"
    assert re.fullmatch(UP + "\n", docker("ps", "--filter", f"id={cid}", "--format",
                                          "{{.Status}}").stdout)
    assert inspect(docker, name, "{{.State.Pid}}") == pid
    docker("kill", name)
    assert docker("wait", name).stdout == "137\n"
    docker("rm", name)
    assert_no_leftovers(daemon, docker, {cid})
