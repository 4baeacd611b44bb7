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

Benchmarks (select with --only load,save,images; all by default):

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
  reference's throughput). Absolute numbers depend on the machine; the ratio
  is the number to track. Without a reference daemon only ours is printed.

  Machine-readable results (every sample, versions, host) go to
  bench/results/<timestamp>.json (gitignored).

Usage
-----
  python bench/run.py [--reps N] [--only load,save,images] [--no-reference]
                      [--size-mib 100] [--calls 200] [--profile]
  make bench BENCH_ARGS="--reps 3 --only images"

  --profile samples our daemon with py-spy (pip install py-spy) during each
  phase, writes the raw stacks to bench/results/<timestamp>-<phase>.pyspy.txt
  and prints the top functions; timings taken with it on are perturbed.
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
import time
from collections import Counter
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import archives  # noqa: E402
import daemons  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
BIG_TAG = "bench/big:latest"
SMALL_REPO = "bench/small"
SMALL_COUNT = 10
PHASES = ("load", "save", "images")
LABEL = {"ours": "ours", "reference": "reference"}


class BenchError(RuntimeError):
    pass


# --- CLI helpers ---------------------------------------------------------------------------


class Cli:
    def __init__(self, docker: str, config_dir: str) -> None:
        self.docker = docker
        self.config_dir = config_dir

    def run(self, d: daemons.Daemon, *args: str, stdout: Any = subprocess.PIPE,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        p = subprocess.run([self.docker, *args], env=d.env(self.config_dir),
                           stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE)
        if check and p.returncode != 0:
            raise BenchError(f"{d.kind}: docker {' '.join(args)} failed ({p.returncode}): "
                             f"{p.stderr.decode(errors='replace').strip()}")
        return p

    def timed(self, d: daemons.Daemon, *args: str, stdout: Any = subprocess.DEVNULL
              ) -> tuple[float, subprocess.CompletedProcess[bytes]]:
        t0 = time.perf_counter()
        p = self.run(d, *args, stdout=stdout)
        return time.perf_counter() - t0, p

    def image_id(self, d: daemons.Daemon, ref: str) -> str | None:
        p = self.run(d, "image", "inspect", "--format", "{{.Id}}", ref, check=False)
        return p.stdout.decode().strip() if p.returncode == 0 else None

    def remove(self, d: daemons.Daemon, ref: str) -> None:
        if self.image_id(d, ref) is not None:
            self.run(d, "rmi", ref)


def interleaved(kinds: list[str], rep: int) -> list[str]:
    """ours, ref on even repetitions; ref, ours on odd ones."""
    return kinds if rep % 2 == 0 else list(reversed(kinds))


def settle() -> None:
    os.sync()
    time.sleep(0.2)


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
# in VMs): an idle worker waiting for work, the event loop waiting in epoll, a lock wait.
_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py)", "EpollSelector.select (selectors.py)",
                "select (selectors.py)", "Condition.wait (threading.py)",
                "Event.wait (threading.py)", "wait (threading.py)",
                "Thread._wait_for_tstate_lock (threading.py)")


def _thread_group(frame: str) -> str:
    """"thread (0x7f..): asyncio_3" -> "asyncio"; "...: MainThread" -> "MainThread"."""
    name = frame.partition(": ")[2] or frame
    return name.rstrip("0123456789").rstrip("_-") or name


def summarize_profile(path: str, top: int = 15) -> dict[str, Any]:
    """Busy samples only: self counts per function, inclusive counts per dockerd_py
    function, and counts per thread group."""
    selfc: Counter[str] = Counter()
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
        for key in {_frame_key(fr) for fr in frames}:
            if "dockerd_py/" in key and "__main__" not in key:
                incl[key] += n
    return {"samples": total, "idle_samples_dropped": idle,
            "self": selfc.most_common(top), "inclusive": incl.most_common(top),
            "threads": threads.most_common(8)}


def print_profile(phase: str, prof: dict[str, Any]) -> None:
    total = prof.get("samples", 0)
    print(f"\n--- py-spy profile of ours during {phase}: {total} busy samples at 250 Hz "
          f"({prof.get('idle_samples_dropped', 0)} idle dropped) ---")
    if not total:
        return
    print("  by thread: " + ", ".join(f"{name} {100 * n / total:.0f}%"
                                      for name, n in prof["threads"]))
    for title in ("self", "inclusive"):
        print(f"  top {title}{' (dockerd_py functions)' if title == 'inclusive' else ''}:")
        for key, n in prof[title]:
            print(f"    {100 * n / total:5.1f}%  {n:6d}  {key}")


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

    conns = {k: daemons.UnixHTTPConnection(d.sock) for k, d in ds.items()}
    urls = {k: f"/v{d.api_version}/images/json" for k, d in ds.items()}
    lat_api: dict[str, list[float]] = {k: [] for k in ds}
    try:
        for kind, conn in conns.items():
            for _ in range(3):
                body = _get(conn, urls[kind], kind)
            if len(json.loads(body)) != SMALL_COUNT:
                raise BenchError(f"{kind}: {urls[kind]} did not list {SMALL_COUNT} images")
        for i in range(calls):
            for kind in interleaved(list(ds), i):
                t0 = time.perf_counter()
                _get(conns[kind], urls[kind], kind)
                lat_api[kind].append(time.perf_counter() - t0)
    finally:
        for conn in conns.values():
            conn.close()
    for kind in ds:
        print(f"  images api  {kind:<9} {calls / sum(lat_api[kind]):8.1f} calls/s "
              f"({urls[kind]})", flush=True)
    return {
        "cli": {k: rate(v) for k, v in lat_cli.items()},
        "api": {k: {**rate(v), "url": urls[k]} for k, v in lat_api.items()},
    }


def _get(conn: daemons.UnixHTTPConnection, url: str, kind: str) -> bytes:
    conn.request("GET", url)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise BenchError(f"{kind}: GET {url}: {resp.status} {body[:200]!r}")
    if resp.will_close:
        raise BenchError(f"{kind}: GET {url}: the daemon closed the keep-alive connection")
    return body


# --- statistics ----------------------------------------------------------------------------


def throughput(times: list[float], sizes: list[int]) -> dict[str, Any]:
    size = statistics.median(sizes)
    return {"seconds": times, "bytes": sizes,
            "median_s": statistics.median(times), "min_s": min(times),
            "median_mb_s": size / statistics.median(times) / 1e6,
            "best_mb_s": size / min(times) / 1e6}


def rate(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {"calls": len(latencies), "total_s": sum(latencies),
            "calls_per_s": len(latencies) / sum(latencies),
            "median_ms": 1000 * statistics.median(latencies),
            "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
            "latencies_s": latencies}


def ratio(ours: float | None, ref: float | None) -> float | None:
    if ours is None or not ref:
        return None
    return ours / ref


# --- output --------------------------------------------------------------------------------


def rows(results: dict[str, Any]) -> list[tuple[str, float | None, float | None, str]]:
    """(label, ours, reference, unit) for the table."""
    out = []

    def pick(block: dict[str, Any], key: str) -> tuple[float | None, float | None]:
        return (block.get("ours", {}).get(key), block.get("reference", {}).get(key))

    for phase in ("load", "save"):
        if phase in results:
            out.append((f"{phase}  median", *pick(results[phase], "median_mb_s"), "MB/s"))
            out.append((f"{phase}  best", *pick(results[phase], "best_mb_s"), "MB/s"))
    if "images" in results:
        for mode, what in (("cli", "docker images (CLI)"), ("api", "GET images/json (API)")):
            block = results["images"][mode]
            out.append((what, *pick(block, "calls_per_s"), "calls/s"))
            out.append(("  median latency", *pick(block, "median_ms"), "ms"))
    return out


def print_table(results: dict[str, Any], has_ref: bool) -> None:
    head = f"{'benchmark':<24} {'unit':<8} {'ours':>10}"
    if has_ref:
        head += f" {'reference':>10} {'ours/ref':>9}"
    print("\n" + head)
    print("-" * len(head))
    for label, ours, ref, unit in rows(results):
        line = f"{label:<24} {unit:<8} {_num(ours):>10}"
        if has_ref:
            r = ratio(ours, ref)
            if unit == "ms" and ours and ref:  # latency: lower is better; show ref/ours
                r = ref / ours
            line += f" {_num(ref):>10} {(f'{r:.2f}' if r is not None else '-'):>9}"
        print(line)
    if has_ref:
        print("ours/ref > 1.00: ours is faster (for latency rows: reference ms / ours ms).")


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark dockerd-py against the reference dockerd "
                                 "(see the docstring of bench/run.py).")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of load and save (5)")
    ap.add_argument("--only", default=",".join(PHASES),
                    help="comma-separated subset of load,save,images (all)")
    ap.add_argument("--no-reference", action="store_true", help="benchmark ours only")
    ap.add_argument("--calls", type=int, default=200, help="docker images calls (200)")
    ap.add_argument("--size-mib", type=int, default=100, help="size of the big layer file (100)")
    ap.add_argument("--docker", default=shutil.which("docker") or "/usr/local/bin/docker",
                    help="the docker CLI to drive the daemons with")
    ap.add_argument("--profile", action="store_true",
                    help="sample our daemon with py-spy during each phase")
    args = ap.parse_args(argv)
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    bad = [p for p in only if p not in PHASES]
    if bad or not only:
        ap.error(f"--only takes a subset of {','.join(PHASES)}; got {args.only!r}")
    if args.reps < 1 or args.calls < 1:
        ap.error("--reps and --calls must be at least 1")
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
            prof = None
            if args.profile:
                prof = Profiler(ds["ours"].pid,
                                os.path.join(RESULTS_DIR, f"{stamp}-{phase}.pyspy.txt"))
            try:
                return fn()
            finally:
                if prof is not None:
                    profiles[phase] = prof.stop()

        if args.profile:
            os.makedirs(RESULTS_DIR, exist_ok=True)
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
        meta = {
            "daemons": {k: {"version": d.version.get("Version"), "api_version": d.api_version,
                            "argv": d.argv} for k, d in ds.items()},
            "archive_bytes": os.path.getsize(big_tar), "image_id": big.id,
        }
        cli_version = cli.run(ds["ours"], "version", "--format", "{{.Client.Version}}",
                              check=False).stdout.decode().strip()

    has_ref = "reference" in meta["daemons"]
    print_table(results, has_ref)
    if not has_ref:
        print(f"(ours only: {ref_note.splitlines()[0] if ref_note else 'no reference'})")
    for phase, prof in profiles.items():
        print_profile(phase, prof)

    ratios = {}
    for label, ours, ref, unit in rows(results):
        if unit != "ms":
            ratios[label.strip()] = ratio(ours, ref)
    doc = {
        "timestamp": stamp, "reps": args.reps, "calls": args.calls,
        "big_file_bytes": args.size_mib << 20, "phases": only,
        "reference_note": ref_note or None, "profiled": args.profile,
        "host": {"kernel": platform.release(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "python": platform.python_version(),
                 "docker_cli": cli_version},
        **meta, "results": results, "ratios_ours_over_reference": ratios,
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
