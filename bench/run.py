#!/usr/bin/env python3
"""dockerd-py benchmarks: this daemon against the reference dockerd, in one run.

What it does
------------
Starts two daemons side by side on private scratch roots under /tmp (see
bench/daemons.py): ours (`python -m dockerd_py`) and, when /usr/sbin/dockerd is
installed (`make reference-deps`), Debian's Docker 20.10 with overlay2 and no
networking. Both are driven by the same stock CLI (`docker`, DOCKER_HOST set to
each socket, a private DOCKER_CONFIG), and both receive byte-identical inputs.
Everything is torn down at the end, also on Ctrl-C/SIGTERM.

Benchmarks (select with --only load,save,images,run,exec,parallel,ps,memory,build,buildx; all by
default; the whole default run takes about 4 minutes on 2 cores, plus the build phase):

  load    `docker load -i big.tar`, where big.tar is a docker-archive built here
          with tarfile (manifest.json + config + one uncompressed layer.tar holding
          100 MiB of seeded pseudo-random, i.e. incompressible, data in one file
          plus a few small files). The image is removed (untimed) before every
          load, so each load does the full work: read the stream, store/unpack
          the layer, verify the diff ID, record the image. Reported as MB/s =
          archive bytes / wall time of the CLI process.
  save    `docker save -o OUT bench/big:latest`. MB/s = size of the archive that
          daemon wrote / wall time. The two daemons write different archives
          (ours: OCI layout + manifest.json, Docker 25+ style; 20.10: legacy
          layout), so the byte counts are shown too.
  images  With 10 small images present in each daemon (and nothing else):
          `cli`: 200 sequential `docker images` processes (calls/s, includes the
          CLI's process start and its /_ping version negotiation);
          `api`: 200 `GET /v<api>/images/json` requests over one keep-alive
          connection (calls/s: the daemon-side cost alone). <api> is the
          version each daemon advertises in /_ping, what the CLI negotiates
          (1.50 for ours, 1.41 for Docker 20.10).

  Container phases (bench/containers.py). Both daemons import busybox:latest from
  the tarball contrib/make-busybox-rootfs.sh builds (`docker import -c 'CMD ["sh"]'`),
  and both run containers with runc (/usr/sbin/runc) on overlay: ours through
  conmon, the reference through containerd + containerd-shim-runc-v2.
  Networking: ours has none yet (every container: a new network namespace with
  loopback only). The reference runs with --bridge none --iptables=false
  --ip-masq=false, so its default network is none-like too (a container on it is
  marked NetworkDisabled and gets a runc-made namespace, loopback only: the same
  work as ours); `--network none` on it goes through libnetwork's null driver
  (sandbox + endpoint), which it pays for. Both are measured, same flags on both.

  run       `docker run --rm busybox true`, --run-reps times (20), default network,
            then the same with `--network none`. Median latency of the CLI process
            (create, attach, start, wait, removal).
  exec      `docker exec CTR true` into a running `sleep 300`, --run-reps times; and into
            one of ours running under crun, when ours has that runtime (`ours-crun`).
  parallel  --parallel (50,20) `docker run -d busybox sleep 300` CLI processes at
            once; wall time from the first spawn until the daemon lists all of them
            as running; then one `docker rm -f` of them all (timed too). Median of
            --parallel-reps (5) bursts per size.
  ps        --ps-containers (200) containers created (`docker create`, 4 CLIs at a
            time; that time is reported too, one sample), then --ps-calls (20)
            `docker ps -a` CLI calls and as many GET /containers/json?all=1 on one
            keep-alive connection; median latency. Then `docker rm -f` of all.
  memory    RSS (and PSS: shared pages split between the processes mapping them)
            of the idle daemons just after start - ours: the python process; the
            reference: dockerd + containerd - and again at the end of the run; and
            with --mem-containers (10) running containers: RSS/PSS of the
            per-container monitors (conmon vs containerd-shim-runc-v2) per container,
            and the daemon's own growth per container.

  build     (bench/build.py) `docker build` of a 28-instruction, five-stage Dockerfile
            with a 50 MB context (50 x 1 MiB random assets, small sources): cold
            (--no-cache), fully cached rebuild, and rebuild after editing one source
            file; --build-reps (5) of each, wall time of the CLI process, medians. Both
            daemons build with --network host (the reference has no bridge).

  buildx    (bench/buildx_build.py) the same Dockerfile and context through the buildx
            plugin (`docker buildx build`, BuildKit's /grpc and /session): ours on its
            builder, the reference dockerd 20.10 on its built-in BuildKit; cold, cached,
            one file touched, --build-reps of each, medians.

  registry  (bench/registry.py) docker pull and push of a 3-layer image (120+50+30 MiB of
            random data, gzip) with Debian's docker-registry on 127.0.0.1: cold, and with
            the base layer already present (locally for pull, in the registry for push);
            --reps repetitions, wall time of the CLI process, medians.

  cri       (bench/cri.py) ours serving CRI (--cri-socket) against containerd 1.6's CRI
            plugin (/work/shared/cri/anchor-containerd.sh), both on daemons of their own:
            --cri-reps (10) x `crictl runp` + `create` + `start` of a one-container pod
            (mean and median of the sum; and the same three calls straight over gRPC),
            and --critest-reps (1) full critest runs (wall). Only when named in --only.

  For every phase the CPU time (user + system) the daemon processes used is
  recorded ("daemon CPU in <phase>": ours: the python process; the reference:
  dockerd + containerd; their own, not the monitors' or runc's).

Repetitions of the two daemons are interleaved (ours, ref, ref, ours, ...) so
that slow drift of the machine affects both alike; the page cache is flushed
to disk (`sync`, untimed) before every timed load/save.

Reading the output
------------------
  MB are 10^6 bytes. For load/save, "median" is archive bytes / median time and
  "best" archive bytes / minimum time over --reps repetitions. For images,
  calls/s = 200 / total time, with the median latency of a single call.
  ours/ref is ours divided by the reference for throughput (higher is better
  for both), so > 1.00 means ours is faster, < 1.00 slower (0.50 = half the
  reference's throughput). For rows in ms, s or MiB (latency, wall time, CPU
  time, memory: lower is better) it is reference / ours, so > 1.00 still means
  ours is better. Absolute numbers depend on the machine; the ratio is the
  number to track. Without a reference daemon only ours is printed.

  Machine-readable results (every sample, versions, host) go to
  bench/results/<timestamp>.json (gitignored).

Usage
-----
  python bench/run.py [--reps N] [--only load,save,images,...] [--no-reference]
                      [--size-mib 100] [--calls 200] [--run-reps 20]
                      [--parallel 50,20] [--parallel-reps 5] [--ps-containers 200]
                      [--ps-calls 20] [--mem-containers 10] [--profile]
  make bench BENCH_ARGS="--reps 3 --only images"

  --profile samples our daemon with py-spy (pip install py-spy) during each
  phase, writes the raw stacks to bench/results/<timestamp>-<phase>.pyspy.txt
  and prints the top functions; timings taken with it on are perturbed. Threads
  that are runnable but waiting for a CPU count as busy, so on a loaded machine
  the busy samples add up to more than the CPU time (printed next to them).
  Must run as root (both daemons need it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import archives  # noqa: E402
import build  # noqa: E402
import buildx_build  # noqa: E402
import containers  # noqa: E402
import cri as cri_bench  # noqa: E402
import daemons  # noqa: E402
import network as network_bench  # noqa: E402
import registry as registry_bench  # noqa: E402
from common import BenchError, Cli, interleaved, rate, settle, time_api_listing  # noqa: E402,F401,E501

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
BIG_TAG = "bench/big:latest"
SMALL_REPO = "bench/small"
SMALL_COUNT = 10
PHASES = ("load", "save", "images", "run", "exec", "parallel", "ps", "memory", "build",
          "buildx", "registry", "network", "cri")
CONTAINER_PHASES = ("memory", "run", "exec", "parallel", "ps", "build", "buildx")
LABEL = {"ours": "ours", "reference": "reference"}


# --- profiling (optional) ------------------------------------------------------------------


class Profiler:
    """py-spy attached to our daemon for one phase; raw stacks in, top functions out."""

    def __init__(self, pid: int, out: str) -> None:
        self.out = out
        exe = shutil.which("py-spy")
        if exe is None:
            raise BenchError("--profile needs py-spy: pip install py-spy")
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
             "--threads", "--output", out],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # let it attach

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return summarize_profile(self.out)


def _frame_key(frame: str) -> str:
    # py-spy raw frames look like "read (tarfile.py:545)": drop the line number.
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    return f"{name} ({file})"


# Leaf frames that are a thread blocked in C (py-spy's idle detection misses some of them
# in VMs): an idle worker waiting for work, the event loop waiting in epoll, a lock wait,
# asyncio's per-child thread blocked in waitpid(pid, 0).
_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py)", "EpollSelector.select (selectors.py)",
                "select (selectors.py)", "Condition.wait (threading.py)",
                "Event.wait (threading.py)", "wait (threading.py)",
                "Thread._wait_for_tstate_lock (threading.py)",
                "ThreadedChildWatcher._do_waitpid (asyncio/unix_events.py)")


def _thread_group(frame: str) -> str:
    """"thread (0x7f..): asyncio_3" -> "asyncio"; "...: MainThread" -> "MainThread"."""
    name = frame.partition(": ")[2] or frame
    return name.rstrip("0123456789").rstrip("_-") or name


def summarize_profile(path: str, top: int = 15) -> dict[str, Any]:
    """Busy samples only: self counts per function, inclusive counts per dockerd_py
    function, and counts per thread group."""
    selfc: Counter[str] = Counter()
    loop_self: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = idle = 0
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return {"samples": 0}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        group = "?"
        if frames and frames[0].startswith(("thread (", "process ")):
            group = _thread_group(frames[0])
            frames = frames[1:]
        if not frames or _frame_key(frames[-1]) in _IDLE_LEAVES:
            idle += n
            continue
        total += n
        threads[group] += n
        selfc[_frame_key(frames[-1])] += n
        if group == "MainThread":  # the event loop: everything else waits while it is busy
            loop_self[_frame_key(frames[-1])] += n
        for key in {_frame_key(fr) for fr in frames}:
            if "dockerd_py/" in key and "__main__" not in key:
                incl[key] += n
    return {"samples": total, "idle_samples_dropped": idle,
            "self": selfc.most_common(top), "inclusive": incl.most_common(top),
            "loop_self": loop_self.most_common(top),
            "threads": threads.most_common(8)}


def print_profile(phase: str, prof: dict[str, Any], cpu_s: float | None = None) -> None:
    total = prof.get("samples", 0)
    print(f"\n--- py-spy profile of ours during {phase}: {total} busy samples at 250 Hz "
          f"({prof.get('idle_samples_dropped', 0)} idle dropped) ---")
    if not total:
        return
    if cpu_s is not None:
        # Runnable threads waiting for a CPU count as busy: on a loaded machine the busy
        # samples are a share of wall time, not of CPU time.
        print(f"  ({total / 250:.1f} s of busy samples; CPU time measured: {cpu_s:.1f} s)")
    print("  by thread: " + ", ".join(f"{name} {100 * n / total:.0f}%"
                                      for name, n in prof["threads"]))
    titles = {"self": "", "inclusive": " (dockerd_py functions)",
              "loop_self": " (self, event loop thread only)"}
    loop_total = dict(prof["threads"]).get("MainThread", 0)
    for title, note in titles.items():
        entries = prof.get(title) or []
        base = (loop_total or 1) if title == "loop_self" else total
        print(f"  top {title.replace('loop_self', 'self')}{note}:")
        for key, n in entries:
            print(f"    {100 * n / base:5.1f}%  {n:6d}  {key}")


# --- phases --------------------------------------------------------------------------------


def phase_load(cli: Cli, ds: dict[str, daemons.Daemon], archive: str,
               expected_id: str, reps: int) -> dict[str, Any]:
    size = os.path.getsize(archive)
    times: dict[str, list[float]] = {k: [] for k in ds}
    for rep in range(reps):
        for kind in interleaved(list(ds), rep):
            d = ds[kind]
            cli.remove(d, BIG_TAG)
            settle()
            t, p = cli.timed(d, "load", "-i", archive, stdout=subprocess.PIPE)
            if b"Loaded image" not in p.stdout:
                raise BenchError(f"{kind}: unexpected docker load output: {p.stdout!r}")
            got = cli.image_id(d, BIG_TAG)
            if got != expected_id:
                raise BenchError(f"{kind}: loaded image ID {got}, expected {expected_id}")
            times[kind].append(t)
            print(f"  load  rep {rep + 1}/{reps}  {kind:<9} {t:7.3f} s  "
                  f"{size / t / 1e6:8.1f} MB/s", flush=True)
    return {k: throughput(v, [size] * len(v)) for k, v in times.items()}


def phase_save(cli: Cli, ds: dict[str, daemons.Daemon], scratch: str,
               reps: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {k: [] for k in ds}
    sizes: dict[str, list[int]] = {k: [] for k in ds}
    for rep in range(reps):
        for kind in interleaved(list(ds), rep):
            d = ds[kind]
            out = os.path.join(scratch, f"save-{kind}.tar")
            settle()
            t, _ = cli.timed(d, "save", "-o", out, BIG_TAG)
            size = os.path.getsize(out)
            if rep == 0:
                check_saved(kind, out)
            os.unlink(out)
            times[kind].append(t)
            sizes[kind].append(size)
            print(f"  save  rep {rep + 1}/{reps}  {kind:<9} {t:7.3f} s  "
                  f"{size / t / 1e6:8.1f} MB/s  ({size / 1e6:.1f} MB)", flush=True)
    return {k: throughput(times[k], sizes[k]) for k in ds}


def check_saved(kind: str, path: str) -> None:
    import tarfile
    with tarfile.open(path) as tf:
        names = tf.getnames()
    if "manifest.json" not in names:
        raise BenchError(f"{kind}: docker save wrote no manifest.json ({names[:10]})")


def phase_images(cli: Cli, ds: dict[str, daemons.Daemon], calls: int) -> dict[str, Any]:
    for kind, d in ds.items():
        p = cli.run(d, "images", "-q", "--no-trunc")
        n = len(p.stdout.split())
        if n != SMALL_COUNT:
            raise BenchError(f"{kind}: {n} images present, expected {SMALL_COUNT}")
        for _ in range(3):  # warm-up, untimed
            cli.run(d, "images", stdout=subprocess.DEVNULL)
    lat_cli: dict[str, list[float]] = {k: [] for k in ds}
    for i in range(calls):
        for kind in interleaved(list(ds), i):
            t, _ = cli.timed(ds[kind], "images")
            lat_cli[kind].append(t)
    for kind in ds:
        print(f"  images cli  {kind:<9} {calls / sum(lat_cli[kind]):8.1f} calls/s", flush=True)

    lat_api, urls = time_api_listing(ds, "images/json", SMALL_COUNT, calls, warmup=3)
    for kind in ds:
        print(f"  images api  {kind:<9} {calls / sum(lat_api[kind]):8.1f} calls/s "
              f"({urls[kind]})", flush=True)
    return {
        "cli": {k: rate(v) for k, v in lat_cli.items()},
        "api": {k: {**rate(v), "url": urls[k]} for k, v in lat_api.items()},
    }


# --- statistics ----------------------------------------------------------------------------


def throughput(times: list[float], sizes: list[int]) -> dict[str, Any]:
    size = statistics.median(sizes)
    return {"seconds": times, "bytes": sizes,
            "median_s": statistics.median(times), "min_s": min(times),
            "median_mb_s": size / statistics.median(times) / 1e6,
            "best_mb_s": size / min(times) / 1e6}


def ratio(ours: float | None, ref: float | None) -> float | None:
    if ours is None or not ref:
        return None
    return ours / ref


# --- output --------------------------------------------------------------------------------


# Units where less is better: ours/ref is then reference / ours, so that > 1.00 always
# means ours is better.
LOWER_IS_BETTER = ("ms", "s", "MiB")


def rows(results: dict[str, Any]) -> list[tuple[str, float | None, float | None, str]]:
    """(label, ours, reference, unit) for the table."""
    out = []

    def pick(block: dict[str, Any], key: str) -> tuple[float | None, float | None]:
        return (block.get("ours", {}).get(key), block.get("reference", {}).get(key))

    def mib(block: dict[str, Any], *path: str) -> tuple[float | None, float | None]:
        got = []
        for kind in ("ours", "reference"):
            v: Any = block.get(kind)
            for key in path:
                v = v.get(key) if isinstance(v, dict) else None
            got.append(v / 1024 if v is not None else None)
        return got[0], got[1]

    for phase in ("load", "save"):
        if phase in results:
            out.append((f"{phase}  median", *pick(results[phase], "median_mb_s"), "MB/s"))
            out.append((f"{phase}  best", *pick(results[phase], "best_mb_s"), "MB/s"))
    if "images" in results:
        for mode, what in (("cli", "docker images (CLI)"), ("api", "GET images/json (API)")):
            block = results["images"][mode]
            out.append((what, *pick(block, "calls_per_s"), "calls/s"))
            out.append(("  median latency", *pick(block, "median_ms"), "ms"))
    if "run" in results:
        out.append(("docker run --rm true", *pick(results["run"]["default"], "median_ms"),
                    "ms"))
        out.append(("  ... --network none", *pick(results["run"]["none"], "median_ms"), "ms"))
    if "exec" in results:
        out.append(("docker exec CTR true", *pick(results["exec"], "median_ms"), "ms"))
        if "ours-crun" in results["exec"]:
            out.append(("  ... ours under crun", results["exec"]["ours-crun"]["median_ms"],
                        results["exec"]["reference"]["median_ms"]
                        if "reference" in results["exec"] else None, "ms"))
    for n, block in results.get("parallel", {}).items():
        out.append((f"{n} x run -d, parallel", *pick(block["start"], "median_s"), "s"))
        out.append((f"  docker rm -f ({n})", *pick(block["rm"], "median_s"), "s"))
    if "ps" in results:
        ps = results["ps"]
        n = ps["containers"]
        out.append((f"docker ps -a ({n} ctrs)", *pick(ps["cli"], "median_ms"), "ms"))
        out.append(("  GET containers/json", *pick(ps["api"], "median_ms"), "ms"))
        out.append((f"  {n} x create ({ps['create_jobs']} jobs)",
                    ps["create_s"].get("ours"), ps["create_s"].get("reference"), "s"))
        out.append((f"  docker rm -f ({n})", ps["rm_s"].get("ours"),
                    ps["rm_s"].get("reference"), "s"))
    if "memory" in results:
        mem = results["memory"]
        if "idle" in mem:
            out.append(("idle daemon RSS", *mib(mem["idle"], "rss_kib"), "MiB"))
            out.append(("  PSS", *mib(mem["idle"], "pss_kib"), "MiB"))
        if "running" in mem:
            run = mem["running"]
            n = next(iter(run.values()))["containers"]
            out.append((f"monitor RSS/ctr ({n} run)",
                        *mib(run, "monitor_rss_per_container_kib"), "MiB"))
            out.append(("  PSS", *mib(run, "monitor_pss_per_container_kib"), "MiB"))
            out.append(("  daemon RSS growth/ctr",
                        *mib(run, "daemon_rss_growth_per_container_kib"), "MiB"))
        if "idle_end" in mem:
            out.append(("idle daemon RSS, end of run", *mib(mem["idle_end"], "rss_kib"), "MiB"))
    if "build" in results:
        b = results["build"]
        out.append((f"build cold ({b['steps']} steps)", *pick(b["cold"], "median_s"), "s"))
        out.append(("  fully cached rebuild", *pick(b["cached"], "median_ms"), "ms"))
        out.append(("  one source file touched", *pick(b["touch"], "median_s"), "s"))
    if "buildx" in results:
        b = results["buildx"]
        out.append((f"buildx build cold ({b['steps']} steps)", *pick(b["cold"], "median_s"),
                    "s"))
        out.append(("  fully cached rebuild", *pick(b["cached"], "median_ms"), "ms"))
        out.append(("  one source file touched", *pick(b["touch"], "median_s"), "s"))
    if "registry" in results:
        med = results["registry"]["median_s"]
        for op, label in (("pull_cold", "registry pull, cold (200 MiB)"),
                          ("pull_shared", "  pull, base layer present"),
                          ("push_cold", "  push, cold"), ("push_shared", "  push, base present")):
            out.append((label, med.get("ours", {}).get(op), med.get("reference", {}).get(op),
                        "s"))
    for phase, by_kind in results.get("daemon_cpu", {}).items():
        out.append((f"daemon CPU in {phase}", by_kind.get("ours"), by_kind.get("reference"),
                    "s"))
    return out


def better_ratio(ours: float | None, ref: float | None, unit: str) -> float | None:
    """> 1: ours is better (faster, or less memory)."""
    if unit in LOWER_IS_BETTER:
        if ours is None or ref is None or ours <= 0 or ref <= 0:
            return None
        return ref / ours
    return ratio(ours, ref)


def qualified_rows(results: dict[str, Any]) -> list[tuple[str, float | None, float | None, str]]:
    """rows() with indented labels prefixed by their parent: unique keys for the JSON."""
    out, parent = [], ""
    for label, ours, ref, unit in rows(results):
        if label.startswith(" "):
            label = f"{parent} / {label.strip()}"
        else:
            parent = label
        out.append((label, ours, ref, unit))
    return out


def print_table(results: dict[str, Any], has_ref: bool) -> None:
    head = f"{'benchmark':<30} {'unit':<8} {'ours':>10}"
    if has_ref:
        head += f" {'reference':>10} {'ours/ref':>9}"
    print("\n" + head)
    print("-" * len(head))
    for label, ours, ref, unit in rows(results):
        line = f"{label:<30} {unit:<8} {_num(ours):>10}"
        if has_ref:
            r = better_ratio(ours, ref, unit)
            line += f" {_num(ref):>10} {(f'{r:.2f}' if r is not None else '-'):>9}"
        print(line)
    if has_ref:
        print("ours/ref > 1.00: ours is better. Throughput rows: ours / reference; rows in "
              "ms, s and MiB\n(latency, wall time, CPU time, memory): reference / ours.")


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark dockerd-py against the reference dockerd "
                                 "(see the docstring of bench/run.py).")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of load and save (5)")
    ap.add_argument("--only", default=",".join(p for p in PHASES if p != "cri"),
                    help=f"comma-separated subset of {','.join(PHASES)} (all but cri, "
                    "which needs the CRI kit in /work/shared/cri and takes minutes)")
    ap.add_argument("--no-reference", action="store_true", help="benchmark ours only")
    ap.add_argument("--calls", type=int, default=200, help="docker images calls (200)")
    ap.add_argument("--size-mib", type=int, default=100, help="size of the big layer file (100)")
    ap.add_argument("--run-reps", type=int, default=20,
                    help="docker run --rm (each network mode) and docker exec calls (20)")
    ap.add_argument("--parallel", default="50,20",
                    help="sizes of the concurrent `docker run -d` bursts (50,20)")
    ap.add_argument("--parallel-reps", type=int, default=5, help="repetitions per burst (5)")
    ap.add_argument("--ps-containers", type=int, default=200,
                    help="containers present for docker ps -a (200)")
    ap.add_argument("--ps-calls", type=int, default=20, help="docker ps -a calls (20)")
    ap.add_argument("--build-reps", type=int, default=5,
                    help="repetitions of each build (cold, cached, touched) (5)")
    ap.add_argument("--mem-containers", type=int, default=10,
                    help="running containers for the monitor memory figures (10)")
    ap.add_argument("--cri-reps", type=int, default=10,
                    help="crictl runp + create + start repetitions per CRI server (10)")
    ap.add_argument("--critest-reps", type=int, default=1,
                    help="full critest runs per CRI server, 0 for none (1)")
    ap.add_argument("--cri-before", default="", metavar="REPO",
                    help="cri: also run the dockerd-py checkout at REPO (before a change)")
    ap.add_argument("--docker", default=shutil.which("docker") or "/usr/local/bin/docker",
                    help="the docker CLI to drive the daemons with")
    ap.add_argument("--profile", action="store_true",
                    help="sample our daemon with py-spy during each phase")
    args = ap.parse_args(argv)
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = [p for p in only if p not in PHASES]
    if bad or not only:
        ap.error(f"--only takes a subset of {','.join(PHASES)}; got {args.only!r}")
    if min(args.reps, args.calls, args.run_reps, args.parallel_reps, args.ps_containers,
           args.ps_calls, args.mem_containers, args.build_reps) < 1:
        ap.error("--reps, --calls, --run-reps, --parallel-reps, --ps-containers, --ps-calls, "
                 "--mem-containers and --build-reps must be at least 1")
    try:
        bursts = [int(n) for n in args.parallel.split(",") if n.strip()]
    except ValueError:
        bursts = []
    if not bursts or min(bursts) < 1:
        ap.error(f"--parallel takes comma-separated positive counts; got {args.parallel!r}")
    if os.geteuid() != 0:
        print("bench/run.py must run as root (the daemons need it)", file=sys.stderr)
        return 2
    if not os.access(args.docker, os.X_OK):
        print(f"docker CLI not found at {args.docker}", file=sys.stderr)
        return 2

    kinds = ["ours"]
    ref_note = ""
    if args.no_reference:
        ref_note = "reference skipped (--no-reference)"
    elif not os.access(daemons.REFERENCE_DOCKERD, os.X_OK):
        ref_note = (f"reference not installed ({daemons.REFERENCE_DOCKERD} missing; "
                    "`make reference-deps` installs docker.io): ours only")
    else:
        kinds.append("reference")

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    daemons.install_signal_handlers()
    started = time.monotonic()
    results: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    cpu: dict[str, dict[str, float]] = {}
    meta: dict[str, Any] = {}
    with daemons.DaemonSet(kinds) as dset:
        print(f"scratch root {dset.root}; building archives ...", flush=True)
        big_tar = os.path.join(dset.root, "big.tar")
        small_tar = os.path.join(dset.root, "small.tar")
        t0 = time.perf_counter()
        big = archives.build(big_tar, [archives.big_image(BIG_TAG, args.size_mib << 20)])[0]
        archives.build(small_tar, archives.small_images(SMALL_REPO, SMALL_COUNT))
        print(f"  big.tar {os.path.getsize(big_tar) / 1e6:.1f} MB ({big.id[:19]}), "
              f"small.tar {SMALL_COUNT} images, in {time.perf_counter() - t0:.1f}s", flush=True)

        print(f"starting {' and '.join(kinds)} ...", flush=True)
        failed = dset.start()
        if "ours" in failed:
            print(f"our daemon failed to start:\n{failed['ours']}", file=sys.stderr)
            return 1
        if "reference" in failed:
            ref_note = "reference failed to start, ours only:\n" + failed["reference"]
        ds = dset.daemons
        if ref_note:
            print(f"note: {ref_note}", flush=True)
        for kind, d in ds.items():
            print(f"  {kind:<9} {d.version.get('Version')} (API {d.api_version}) pid {d.pid}")
        cli = Cli(args.docker, dset.cli_config)

        def profiled(phase: str, fn: Any) -> Any:
            """Runs one phase: CPU time of each daemon over it, and py-spy if asked."""
            prof = None
            if args.profile:
                prof = Profiler(ds["ours"].pid,
                                os.path.join(RESULTS_DIR, f"{stamp}-{phase}.pyspy.txt"))
            cpu0 = {k: containers.cpu_seconds(d) for k, d in ds.items()}
            try:
                return fn()
            finally:
                cpu[phase] = {k: containers.cpu_seconds(d) - cpu0[k] for k, d in ds.items()}
                if prof is not None:
                    profiles[phase] = prof.stop()

        if args.profile:
            os.makedirs(RESULTS_DIR, exist_ok=True)
        if "memory" in only:
            print("memory: idle daemons, just started", flush=True)
            results["memory"] = {"idle": containers.idle_memory(ds)}
        if "images" in only:
            print("images: 10 small images in each daemon", flush=True)
            for d in ds.values():
                cli.remove(d, BIG_TAG)
                cli.run(d, "load", "-q", "-i", small_tar)
            results["images"] = profiled("images", lambda: phase_images(cli, ds, args.calls))
        if "load" in only:
            print(f"load: {args.reps} repetitions", flush=True)
            results["load"] = profiled("load", lambda: phase_load(cli, ds, big_tar, big.id,
                                                                 args.reps))
        if "save" in only:
            for d in ds.values():
                if cli.image_id(d, BIG_TAG) is None:
                    cli.run(d, "load", "-q", "-i", big_tar)
            print(f"save: {args.reps} repetitions", flush=True)
            results["save"] = profiled("save", lambda: phase_save(cli, ds, dset.root, args.reps))
        if "registry" in only:
            print(f"registry: pull/push of a 3-layer 200 MiB image, {args.reps} repetitions",
                  flush=True)
            results["registry"] = profiled("registry", lambda: registry_bench.run_bench(
                cli, ds, tempfile.mkdtemp(prefix="registries-", dir=dset.root), args.reps))
        if any(p in only for p in CONTAINER_PHASES):
            tar = containers.build_busybox(dset.root)
            ids = {k: containers.import_busybox(cli, d, tar) for k, d in ds.items()}
            print(f"containers: {containers.BUSYBOX} imported from {os.path.basename(tar)} "
                  f"({os.path.getsize(tar) / 1e6:.1f} MB; "
                  + ", ".join(f"{k} {v[:19]}" for k, v in ids.items()) + ")", flush=True)
        if "memory" in only:
            print(f"memory: {args.mem_containers} running containers", flush=True)
            results["memory"]["running"] = profiled(
                "memory", lambda: containers.phase_memory(cli, ds, args.mem_containers))
        if "run" in only:
            print(f"run: {args.run_reps} x docker run --rm busybox true, default network "
                  "and --network none", flush=True)
            results["run"] = profiled("run", lambda: containers.phase_run(cli, ds,
                                                                          args.run_reps))
        if "exec" in only:
            print(f"exec: {args.run_reps} x docker exec CTR true", flush=True)
            results["exec"] = profiled("exec", lambda: containers.phase_exec(cli, ds,
                                                                             args.run_reps))
        if "build" in only:
            print(f"build: {args.build_reps} x cold, cached and one-file-touched builds of a "
                  "multi-stage Dockerfile with a 50 MB context", flush=True)
            results["build"] = profiled("build", lambda: build.phase_build(
                cli, ds, dset.root, args.build_reps))
        if "buildx" in only:
            print(f"buildx: {args.build_reps} x cold, cached and one-file-touched builds of "
                  "the same Dockerfile through the buildx plugin (BuildKit)", flush=True)
            results["buildx"] = profiled("buildx", lambda: buildx_build.phase_buildx(
                cli, ds, dset.root, args.build_reps))
        if "parallel" in only:
            print(f"parallel: bursts of {args.parallel} concurrent docker run -d, "
                  f"{args.parallel_reps} repetitions", flush=True)
            results["parallel"] = profiled("parallel", lambda: containers.phase_parallel(
                cli, ds, bursts, args.parallel_reps))
        if "network" in only:  # ours only, on a daemon of its own (bench/network.py)
            print(f"network: bridge vs --network none, {args.run_reps} x docker run --rm; "
                  "TCP through a published port vs direct", flush=True)
            results["network"] = network_bench.run(args.run_reps, 20, 200, 5)
            network_bench.report(results["network"])
        if "cri" in only:  # on daemons of its own: ours with CRI, containerd's CRI (cri.py)
            results["cri"] = cri_bench.run(args.cri_reps, args.critest_reps,
                                            args.cri_before)
            cri_bench.report(results["cri"])
        if "ps" in only:
            print(f"ps: {args.ps_calls} x docker ps -a with {args.ps_containers} containers",
                  flush=True)
            results["ps"] = profiled("ps", lambda: containers.phase_ps(
                cli, ds, args.ps_containers, args.ps_calls))
        if "memory" in only:
            print("memory: idle daemons at the end of the run", flush=True)
            results["memory"]["idle_end"] = containers.idle_memory(ds, settle_s=1.0)
        runtimes = {}
        for kind, d in ds.items():
            p = cli.run(d, "info", "--format", "{{.DefaultRuntime}} {{json .Runtimes}}",
                        check=False)
            runtimes[kind] = p.stdout.decode().strip() or None
        meta = {
            "daemons": {k: {"version": d.version.get("Version"), "api_version": d.api_version,
                            "argv": d.argv, "runtime": runtimes[k]} for k, d in ds.items()},
            "archive_bytes": os.path.getsize(big_tar), "image_id": big.id,
        }
        cli_version = cli.run(ds["ours"], "version", "--format", "{{.Client.Version}}",
                              check=False).stdout.decode().strip()

    has_ref = "reference" in meta["daemons"]
    results_cpu = {"daemon_cpu": cpu}
    print_table({**results, **results_cpu}, has_ref)
    if not has_ref:
        print(f"(ours only: {ref_note.splitlines()[0] if ref_note else 'no reference'})")
    for phase, prof in profiles.items():
        print_profile(phase, prof, cpu.get(phase, {}).get("ours"))

    ratios = {}
    for label, ours, ref, unit in rows(results):
        if unit not in LOWER_IS_BETTER:
            ratios[label.strip()] = ratio(ours, ref)
    better = {label: better_ratio(ours, ref, unit)
              for label, ours, ref, unit in qualified_rows({**results, **results_cpu})}
    doc = {
        "timestamp": stamp, "reps": args.reps, "calls": args.calls,
        "run_reps": args.run_reps, "parallel": bursts, "parallel_reps": args.parallel_reps,
        "ps_containers": args.ps_containers, "ps_calls": args.ps_calls,
        "mem_containers": args.mem_containers, "build_reps": args.build_reps,
        "big_file_bytes": args.size_mib << 20, "phases": only,
        "reference_note": ref_note or None, "profiled": args.profile,
        "host": {"kernel": platform.release(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "python": platform.python_version(),
                 "docker_cli": cli_version},
        **meta, "results": results, "daemon_cpu_s": cpu,
        "ratios_ours_over_reference": ratios,
        "ratios_ours_better": better,
        "profiles": profiles or None,
        "wall_s": time.monotonic() - started,
    }
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{stamp}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"\nresults: {os.path.relpath(path)}  (whole run {doc['wall_s']:.0f}s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; daemons stopped and scratch root removed", file=sys.stderr)
        sys.exit(130)
    except BenchError as e:
        print(f"bench failed: {e}", file=sys.stderr)
        sys.exit(1)
