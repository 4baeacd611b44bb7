#!/usr/bin/env python3
"""Networking benchmarks of dockerd-py: what the bridge costs, measured in one run.

  start     `docker run --rm busybox true` on the default bridge against the same with
            `--network none`, interleaved, --reps times each (20); median latency of the
            CLI process. The ratio none/bridge is the price of the bridge (netns pinning,
            netavark setup and teardown, address bookkeeping).
  parallel  --parallel (20) `docker run -d busybox sleep 300` at once on the bridge and
            on none; wall time until all are running (median of 3 bursts).
  tcp       --mib (200) MiB sent from the host to a sink in a container: through a
            published port on 127.0.0.1 (DNAT) and straight to the container's bridge
            address; --tcp-reps (5) transfers each, interleaved; median MB/s. The sink is
            a Python loop run on the host inside the container's network namespace
            (busybox has no suitable server), the same for both paths.

The daemon runs on its own scratch roots with a bridge name and subnets of its own,
so it coexists with any other daemon on the host. Traffic goes only to 127.0.0.1 and
to the benchmark's own container. Usage: python bench/network.py [--reps N] ...
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import containers  # noqa: E402
import daemons  # noqa: E402
from common import Cli, save_results  # noqa: E402

SINK = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5001))
srv.listen(8)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    total = 0
    while chunk := conn.recv(1 << 20):
        total += len(chunk)
    conn.sendall(str(total).encode())
    conn.close()
"""


class NetDaemon(daemons.Daemon):
    """Our daemon with a bridge and pools of its own (daemons.Daemon writes `{}`)."""

    def start(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        config = os.path.join(self.dir, "daemon.json")
        tag = os.getpid() % 200
        with open(config, "w") as f:
            json.dump({"bridge": f"dpybench{tag}", "bip": f"10.{30 + tag % 30}.{tag}.1/24",
                       "default-address-pools": [{"base": f"10.{60 + tag % 30}.0.0/16",
                                                  "size": 24}]}, f)
        self.argv = [sys.executable, "-m", "dockerd_py", "-H", f"unix://{self.sock}",
                     "--data-root", os.path.join(self.dir, "data"),
                     "--exec-root", os.path.join(self.dir, "exec"),
                     "--pidfile", os.path.join(self.dir, "pid"), "--config-file", config]
        env = dict(os.environ)
        env["PYTHONPATH"] = daemons.REPO + (os.pathsep + env["PYTHONPATH"]
                                            if env.get("PYTHONPATH") else "")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=daemons.REPO, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def bench_start(cli: Cli, d: daemons.Daemon, reps: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"bridge": [], "none": []}
    modes = {"bridge": [], "none": ["--network", "none"]}
    for rep in range(reps):
        for mode in (("bridge", "none") if rep % 2 == 0 else ("none", "bridge")):
            t, _ = cli.timed(d, "run", "--rm", *modes[mode], containers.BUSYBOX, "true")
            samples[mode].append(t)
    return {m: {"median_ms": median_ms(v), "samples_s": v} for m, v in samples.items()}


def bench_parallel(cli: Cli, d: daemons.Daemon, n: int) -> dict[str, Any]:
    out: dict[str, list[float]] = {"bridge": [], "none": []}
    for rep in range(3):
        for mode in (("bridge", "none") if rep % 2 == 0 else ("none", "bridge")):
            extra = [] if mode == "bridge" else ["--network", "none"]
            t0 = time.perf_counter()
            procs = [cli.popen(d, "run", "-d", "--label", "netbench=1", *extra,
                               containers.BUSYBOX, "sleep", "300") for _ in range(n)]
            ids = []
            for p in procs:
                stdout, stderr = p.communicate()
                if p.returncode != 0:
                    raise RuntimeError(f"docker run -d: {stderr.decode().strip()}")
                ids.append(stdout.decode().strip())
            out[mode].append(time.perf_counter() - t0)
            cli.run(d, "rm", "-f", *ids)
    return {m: {"median_s": statistics.median(v), "samples_s": v} for m, v in out.items()}


def _send(host: str, port: int, total: int) -> float:
    chunk = os.urandom(1 << 18)
    with socket.create_connection((host, port), timeout=30) as s:
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        got = int(s.recv(64) or b"0")
        elapsed = time.perf_counter() - t0
    if got != sent:
        raise RuntimeError(f"sink received {got} of {sent} bytes")
    return sent / elapsed / 1e6


def bench_tcp(cli: Cli, d: daemons.Daemon, mib: int, reps: int) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cid = cli.run(d, "run", "-d", "-p", f"127.0.0.1:{port}:5001", containers.BUSYBOX, "sleep",
                  "600").stdout.decode().strip()
    sink = None
    try:
        info = json.loads(cli.run(d, "inspect", cid).stdout)[0]["NetworkSettings"]
        sink = subprocess.Popen(["nsenter", f"--net={info['SandboxKey']}", sys.executable,
                                 "-c", SINK], stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        paths = {"published": ("127.0.0.1", port), "direct": (info["IPAddress"], 5001)}
        out: dict[str, list[float]] = {k: [] for k in paths}
        for rep in range(reps):
            for name in (list(paths) if rep % 2 == 0 else list(reversed(paths))):
                out[name].append(_send(*paths[name], mib << 20))
        return {k: {"median_MBps": statistics.median(v), "samples_MBps": v}
                for k, v in out.items()}
    finally:
        if sink is not None:
            sink.kill()
            sink.wait()
        cli.run(d, "rm", "-f", cid, check=False)


def run(reps: int, parallel: int, mib: int, tcp_reps: int) -> dict[str, Any]:
    with daemons.DaemonSet([]) as dset:
        d = NetDaemon("ours", os.path.join(dset.root, "ours"))
        dset.daemons["ours"] = d
        failed = dset.start()
        if failed:
            raise RuntimeError(failed["ours"])
        cli = Cli(os.environ.get("DOCKER", "docker"), dset.cli_config)
        containers.import_busybox(cli, d, containers.build_busybox(dset.root))
        print(f"start: {reps} x docker run --rm busybox true, bridge and none", flush=True)
        results = {"start": bench_start(cli, d, reps)}
        print(f"parallel: 3 bursts of {parallel} docker run -d, bridge and none", flush=True)
        results["parallel"] = bench_parallel(cli, d, parallel)
        print(f"tcp: {tcp_reps} x {mib} MiB, published port and direct", flush=True)
        results["tcp"] = bench_tcp(cli, d, mib, tcp_reps)
    return results


def report(r: dict[str, Any]) -> None:
    s, p, t = r["start"], r["parallel"], r["tcp"]
    print(f"\n{'benchmark':34} {'bridge':>10} {'none':>10} {'none/bridge':>12}")
    print(f"{'docker run --rm true (ms)':34} {s['bridge']['median_ms']:10.1f} "
          f"{s['none']['median_ms']:10.1f} "
          f"{s['none']['median_ms'] / s['bridge']['median_ms']:12.2f}")
    print(f"{'parallel run -d, wall (s)':34} {p['bridge']['median_s']:10.2f} "
          f"{p['none']['median_s']:10.2f} "
          f"{p['none']['median_s'] / p['bridge']['median_s']:12.2f}")
    print(f"\n{'tcp to a container':34} {'published':>10} {'direct':>10} "
          f"{'pub/direct':>12}")
    print(f"{'throughput (MB/s)':34} {t['published']['median_MBps']:10.0f} "
          f"{t['direct']['median_MBps']:10.0f} "
          f"{t['published']['median_MBps'] / t['direct']['median_MBps']:12.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--parallel", type=int, default=20)
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--tcp-reps", type=int, default=5)
    args = ap.parse_args(argv)
    daemons.install_signal_handlers()
    results = run(args.reps, args.parallel, args.mib, args.tcp_reps)
    report(results)
    print(f"\nresults: {save_results(results, 'network')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
