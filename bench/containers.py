"""Container benchmarks: run, exec, parallel starts, `docker ps -a`, memory.

Every phase drives both daemons with the same stock CLI and the same busybox image:
contrib/make-busybox-rootfs.sh builds the root filesystem tarball (deterministic, from
Debian's busybox-static), which each daemon imports as busybox:latest with
`docker import -c 'CMD ["sh"]'`. Repetitions alternate between the daemons (ours, ref,
ref, ours, ...). Every container a phase makes carries the label LABEL_KEY, is removed
by the phase (`docker rm -f`), also when the phase fails; DaemonSet.close() removes
whatever is left (Ctrl-C) before it stops the daemons.

Networking: ours has no networks yet; every container gets a new network namespace
(runc creates it, loopback only), whatever --network says short of `host`. The
reference runs with `--bridge none --iptables=false --ip-masq=false` (bench/daemons.py),
so it has no bridge either: a default-network container there is marked
NetworkDisabled and also gets a runc-made namespace with loopback only - the same work
as ours. `--network none` there goes through libnetwork's null driver (a sandbox, a
namespace it creates and bind-mounts, an endpoint), which costs the reference more.
Both variants are measured.

Memory is read from /proc: VmRSS (status) and Pss (smaps_rollup, shared pages split
between the processes that map them: what N identical monitors really cost). The
daemon is the process started plus its descendants (the reference's managed
containerd); monitors are the processes whose argv names a path under the daemon's
directory and whose name is conmon or containerd-shim* (they are reparented to init,
so they are not descendants).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import daemons
from common import BenchError, Cli, interleaved, rate, time_api_listing

BUSYBOX = "busybox:latest"
LABEL_KEY = "dockerd-py.bench"
MAKE_ROOTFS = os.path.join(daemons.REPO, "contrib", "make-busybox-rootfs.sh")
MONITOR_NAMES = ("conmon", "containerd-shim")  # comm is cut at 15 chars: containerd-shim
KIB = 1024
MIB = 1 << 20


# --- image ---------------------------------------------------------------------------------


def build_busybox(scratch: str) -> str:
    out = os.path.join(scratch, "busybox-rootfs.tar")
    p = subprocess.run([MAKE_ROOTFS, out], stdin=subprocess.DEVNULL, capture_output=True)
    if p.returncode != 0:
        raise BenchError(f"{MAKE_ROOTFS} failed: {p.stderr.decode(errors='replace').strip()}")
    return out


def import_busybox(cli: Cli, d: daemons.Daemon, tar: str) -> str:
    p = cli.run(d, "import", "-c", 'CMD ["sh"]', tar, BUSYBOX)
    return p.stdout.decode().strip()


# --- helpers -------------------------------------------------------------------------------


def _api(d: daemons.Daemon, method: str, path: str, timeout: float = 30.0) -> Any:
    status, _, body = daemons.request(d.sock, method, f"/v{d.api_version}{path}",
                                      timeout=timeout)
    if status >= 300:
        raise BenchError(f"{d.kind}: {method} {path}: {status} {body[:200]!r}")
    return json.loads(body) if body else None


def _list(d: daemons.Daemon, label: str, running_only: bool = False) -> list[str]:
    """IDs of the containers with this label (all states unless running_only)."""
    filters: dict[str, list[str]] = {"label": [label]}
    if running_only:
        filters["status"] = ["running"]
    q = urllib.parse.quote(json.dumps(filters))
    rows = _api(d, "GET", f"/containers/json?all={0 if running_only else 1}&filters={q}")
    return [c["Id"] for c in rows]


def _rm(cli: Cli, d: daemons.Daemon, ids: list[str]) -> float:
    """`docker rm -f ID...` (one CLI call; the CLI removes them in parallel); seconds."""
    if not ids:
        return 0.0
    t, _ = cli.timed(d, "rm", "-f", *ids)
    return t


def _cleanup(cli: Cli, d: daemons.Daemon, label: str) -> None:
    """Remove every container with the label, leaving none; used on all exits of a phase."""
    try:
        _rm(cli, d, _list(d, label))
    except (BenchError, OSError):
        pass


def _expect_none(d: daemons.Daemon, label: str, what: str) -> None:
    left = _list(d, label)
    if left:
        raise BenchError(f"{d.kind}: {len(left)} container(s) left after {what}")


def seconds(times: list[float]) -> dict[str, Any]:
    return {"seconds": times, "median_s": statistics.median(times), "min_s": min(times),
            "max_s": max(times)}


# --- 1. docker run --rm busybox true -------------------------------------------------------


def phase_run(cli: Cli, ds: dict[str, daemons.Daemon], reps: int) -> dict[str, Any]:
    """`docker run --rm busybox true`: create, attach, start, wait for the exit and for
    the removal, all in one CLI process. Default network, then --network none."""
    label = f"{LABEL_KEY}=run"
    out: dict[str, Any] = {}
    for mode, extra in (("default", []), ("none", ["--network", "none"])):
        args = ["run", "--rm", "--label", label, *extra, BUSYBOX, "true"]
        lat: dict[str, list[float]] = {k: [] for k in ds}
        try:
            for d in ds.values():
                for _ in range(2):  # warm-up, untimed
                    cli.run(d, *args, stdout=subprocess.DEVNULL)
            for rep in range(reps):
                for kind in interleaved(list(ds), rep):
                    t, _ = cli.timed(ds[kind], *args)
                    lat[kind].append(t)
            for d in ds.values():
                _expect_none(d, label, f"{reps} x docker run --rm")
        finally:
            for d in ds.values():
                _cleanup(cli, d, label)
        for kind in ds:
            print(f"  run --rm ({mode:<7}) {kind:<9} median "
                  f"{1000 * statistics.median(lat[kind]):7.1f} ms", flush=True)
        out[mode] = {k: rate(v) for k, v in lat.items()}
    return out


# --- 2. docker exec ------------------------------------------------------------------------


def phase_exec(cli: Cli, ds: dict[str, daemons.Daemon], reps: int) -> dict[str, Any]:
    """`docker exec <running container> true`, one long-running container per daemon
    (runc on both), and one more in ours under crun when ours offers it ("ours-crun":
    `runc exec` alone takes about 30 ms here, crun's a few)."""
    label = f"{LABEL_KEY}=exec"
    Target = tuple[daemons.Daemon, tuple[str, ...]]  # the daemon, flags of its docker run
    targets: dict[str, Target] = {k: (d, ()) for k, d in ds.items()}
    if "ours" in ds and "crun" in _runtimes(cli, ds["ours"]):
        targets["ours-crun"] = (ds["ours"], ("--runtime", "crun"))
    lat: dict[str, list[float]] = {k: [] for k in targets}
    try:
        cids = {}
        for kind, (d, flags) in targets.items():
            p = cli.run(d, "run", "-d", "--label", label, *flags, BUSYBOX, "sleep", "300")
            cids[kind] = p.stdout.decode().strip()
            for _ in range(2):
                cli.run(d, "exec", cids[kind], "true")
        for rep in range(reps):
            for kind in interleaved(list(targets), rep):
                t, _ = cli.timed(targets[kind][0], "exec", cids[kind], "true")
                lat[kind].append(t)
    finally:
        for d in ds.values():
            _cleanup(cli, d, label)
    for kind in targets:
        print(f"  exec true        {kind:<9} median "
              f"{1000 * statistics.median(lat[kind]):7.1f} ms", flush=True)
    return {k: rate(v) for k, v in lat.items()}


def _runtimes(cli: Cli, d: daemons.Daemon) -> list[str]:
    p = cli.run(d, "info", "--format", "{{json .Runtimes}}")
    return list(json.loads(p.stdout or b"{}"))


# --- 3. N containers started concurrently --------------------------------------------------


def _start_concurrently(cli: Cli, d: daemons.Daemon, n: int, label: str
                        ) -> tuple[float, list[str]]:
    """n `docker run -d busybox sleep 300` processes at once; seconds from the first
    spawn until the daemon lists all n as running, and their IDs."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            procs.append(cli.popen(d, "run", "-d", "--label", label, BUSYBOX, "sleep", "300"))
        outs = [p.communicate() for p in procs]
        failed = [(p.returncode, err)
                  for p, (_, err) in zip(procs, outs, strict=True) if p.returncode]
        if failed:
            raise BenchError(f"{d.kind}: {len(failed)} of {n} parallel `docker run -d` failed, "
                             f"first: {failed[0][1].decode(errors='replace').strip()}")
        deadline = time.monotonic() + 60
        while len(running := _list(d, label, running_only=True)) < n:
            if time.monotonic() > deadline:
                raise BenchError(f"{d.kind}: only {len(running)} of {n} running after 60 s")
            time.sleep(0.01)
        t = time.perf_counter() - t0
    finally:
        for p in procs:  # on Ctrl-C: no CLI may create a container after the cleanup
            if p.poll() is None:
                p.kill()
                p.wait()
    return t, [o.decode().strip() for o, _ in outs]


def phase_parallel(cli: Cli, ds: dict[str, daemons.Daemon], counts: list[int],
                   reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in counts:
        label = f"{LABEL_KEY}=parallel-{n}"
        start: dict[str, list[float]] = {k: [] for k in ds}
        remove: dict[str, list[float]] = {k: [] for k in ds}
        try:
            for rep in range(reps):
                for kind in interleaved(list(ds), rep):
                    d = ds[kind]
                    t, ids = _start_concurrently(cli, d, n, label)
                    t_rm = _rm(cli, d, ids)
                    _expect_none(d, label, f"docker rm -f of {n}")
                    start[kind].append(t)
                    remove[kind].append(t_rm)
                    print(f"  parallel {n:>3}  rep {rep + 1}/{reps}  {kind:<9} start {t:6.2f} s"
                          f"  rm -f {t_rm:6.2f} s", flush=True)
                    time.sleep(0.5)  # let asynchronous teardown finish before the next start
        finally:
            for d in ds.values():
                _cleanup(cli, d, label)
        out[str(n)] = {"start": {k: seconds(v) for k, v in start.items()},
                       "rm": {k: seconds(v) for k, v in remove.items()}}
    return out


# --- 4. docker ps -a with many containers --------------------------------------------------


def phase_ps(cli: Cli, ds: dict[str, daemons.Daemon], count: int, calls: int,
             create_jobs: int = 4) -> dict[str, Any]:
    """`docker ps -a` (CLI) and GET /containers/json?all=1 (API, one keep-alive
    connection) with `count` created (never started) containers present."""
    label = f"{LABEL_KEY}=ps"
    create_s: dict[str, float] = {}
    rm_s: dict[str, float] = {}
    lat_cli: dict[str, list[float]] = {k: [] for k in ds}
    try:
        for kind, d in ds.items():
            def create(_: int, d: daemons.Daemon = d) -> None:
                cli.run(d, "create", "--label", label, BUSYBOX, "true")
            t0 = time.perf_counter()
            with ThreadPoolExecutor(create_jobs) as pool:
                list(pool.map(create, range(count)))
            create_s[kind] = time.perf_counter() - t0
            n = len(cli.run(d, "ps", "-aq").stdout.split())
            if n != count:
                raise BenchError(f"{kind}: docker ps -aq lists {n} containers, expected {count}")
            print(f"  ps: {count} x docker create ({create_jobs} at a time) {kind:<9} "
                  f"{create_s[kind]:6.2f} s", flush=True)
            for _ in range(2):
                cli.run(d, "ps", "-a", stdout=subprocess.DEVNULL)
        for i in range(calls):
            for kind in interleaved(list(ds), i):
                t, _ = cli.timed(ds[kind], "ps", "-a")
                lat_cli[kind].append(t)
        lat_api, _ = time_api_listing(ds, "containers/json?all=1", count, calls, warmup=2)
        for kind, d in ds.items():
            rm_s[kind] = _rm(cli, d, _list(d, label))
            _expect_none(d, label, f"docker rm -f of {count}")
    finally:
        for d in ds.values():
            _cleanup(cli, d, label)
    for kind in ds:
        print(f"  ps -a  {kind:<9} median {1000 * statistics.median(lat_cli[kind]):7.1f} ms"
              f"  (API {1000 * statistics.median(lat_api[kind]):6.1f} ms)"
              f"  rm -f {count}: {rm_s[kind]:.2f} s", flush=True)
    return {"cli": {k: rate(v) for k, v in lat_cli.items()},
            "api": {k: rate(v) for k, v in lat_api.items()},
            "create_s": create_s, "create_jobs": create_jobs, "rm_s": rm_s,
            "containers": count}


# --- 5. memory -----------------------------------------------------------------------------


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_memory(pid: int) -> dict[str, Any] | None:
    """{pid, comm, rss_kib, pss_kib} of a live process, None if it is gone."""
    rss = pss = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (OSError, ValueError):
        return None
    if rss is None:
        return None  # a zombie
    return {"pid": pid, "comm": _comm(pid), "rss_kib": rss, "pss_kib": pss or 0}


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(d: daemons.Daemon) -> float:
    """User + system CPU time of the daemon process and its live descendants, their own
    (not that of children they waited for: ours runs runc itself, the reference has a
    containerd-shim run it, so children's time would not compare)."""
    total = 0
    for pid in [d.pid] + [pid for pid, _ in daemons.descendants(d.pid)]:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLK_TCK


def _sum(procs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rss_kib": sum(p["rss_kib"] for p in procs),
            "pss_kib": sum(p["pss_kib"] for p in procs), "processes": procs}


def daemon_memory(d: daemons.Daemon) -> dict[str, Any]:
    """The daemon process and its descendants (the reference: dockerd + containerd)."""
    pids = [d.pid] + [pid for pid, _ in daemons.descendants(d.pid)]
    return _sum([m for m in map(proc_memory, pids) if m is not None])


def monitor_memory(d: daemons.Daemon) -> dict[str, Any]:
    """conmon / containerd-shim processes of this daemon (not its descendants)."""
    tree = {d.pid} | {pid for pid, _ in daemons.descendants(d.pid)}
    procs = [m for pid, _ in daemons.processes_mentioning(d.dir)
             if pid not in tree and _comm(pid).startswith(MONITOR_NAMES)
             and (m := proc_memory(pid)) is not None]
    return _sum(procs)


def _median_sample(fn: Callable[[daemons.Daemon], dict[str, Any]], d: daemons.Daemon,
                   samples: int = 3) -> dict[str, Any]:
    """The sample with the median RSS out of a few, 0.3 s apart."""
    got: list[dict[str, Any]] = []
    for i in range(samples):
        if i:
            time.sleep(0.3)
        got.append(fn(d))
    return sorted(got, key=lambda m: m["rss_kib"])[len(got) // 2]


def idle_memory(ds: dict[str, daemons.Daemon], settle_s: float = 2.0) -> dict[str, Any]:
    time.sleep(settle_s)
    out = {k: _median_sample(daemon_memory, d) for k, d in ds.items()}
    for kind, m in out.items():
        parts = ", ".join(f"{p['comm']} {p['rss_kib'] / KIB:.1f}" for p in m["processes"])
        print(f"  idle daemon RSS  {kind:<9} {m['rss_kib'] / KIB:7.1f} MiB "
              f"(PSS {m['pss_kib'] / KIB:.1f}; {parts})", flush=True)
    return out


def phase_memory(cli: Cli, ds: dict[str, daemons.Daemon], n: int) -> dict[str, Any]:
    """Daemon and monitor memory with n running `sleep 300` containers, per container."""
    label = f"{LABEL_KEY}=memory"
    out: dict[str, Any] = {}
    try:
        for kind, d in ds.items():
            time.sleep(1.0)
            before = _median_sample(daemon_memory, d)
            for _ in range(n):
                cli.run(d, "run", "-d", "--label", label, BUSYBOX, "sleep", "300")
            if len(_list(d, label, running_only=True)) != n:
                raise BenchError(f"{kind}: not all {n} containers are running")
            time.sleep(1.0)
            during = _median_sample(daemon_memory, d)
            mon = _median_sample(monitor_memory, d)
            if len(mon["processes"]) != n:
                names = sorted({p["comm"] for p in mon["processes"]})
                raise BenchError(f"{kind}: found {len(mon['processes'])} monitor processes "
                                 f"({names}) for {n} containers")
            _rm(cli, d, _list(d, label))
            _expect_none(d, label, f"docker rm -f of {n}")
            out[kind] = {
                "containers": n, "daemon_before": before, "daemon_running": during,
                "monitors": mon,
                "monitor_rss_per_container_kib": mon["rss_kib"] / n,
                "monitor_pss_per_container_kib": mon["pss_kib"] / n,
                "daemon_rss_growth_per_container_kib":
                    (during["rss_kib"] - before["rss_kib"]) / n,
            }
            print(f"  memory {n} running  {kind:<9} monitors "
                  f"({mon['processes'][0]['comm']}) RSS {mon['rss_kib'] / KIB / n:5.2f} MiB "
                  f"PSS {mon['pss_kib'] / KIB / n:5.2f} MiB per container; daemon RSS "
                  f"{before['rss_kib'] / KIB:.1f} -> {during['rss_kib'] / KIB:.1f} MiB",
                  flush=True)
    finally:
        for d in ds.values():
            _cleanup(cli, d, label)
    return out
