"""Shared by the benchmark phases: the CLI driver, interleaving and latency statistics."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from typing import Any

import daemons


class BenchError(RuntimeError):
    pass


class Cli:
    """The stock docker CLI, pointed at one daemon per call (DOCKER_HOST, private config)."""

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

    def popen(self, d: daemons.Daemon, *args: str) -> subprocess.Popen[bytes]:
        """Start a CLI process without waiting (stdout and stderr piped)."""
        return subprocess.Popen([self.docker, *args], env=d.env(self.config_dir),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

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


def rate(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {"calls": len(latencies), "total_s": sum(latencies),
            "calls_per_s": len(latencies) / sum(latencies),
            "median_ms": 1000 * statistics.median(latencies),
            "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
            "latencies_s": latencies}


def api_get(conn: daemons.UnixHTTPConnection, url: str, kind: str) -> bytes:
    """One GET on a kept-alive connection; the body, or BenchError."""
    conn.request("GET", url)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise BenchError(f"{kind}: GET {url}: {resp.status} {body[:200]!r}")
    if resp.will_close:
        raise BenchError(f"{kind}: GET {url}: the daemon closed the keep-alive connection")
    return body


def time_api_listing(ds: dict[str, Any], path: str, expect: int, calls: int,
                     warmup: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Latencies of `calls` GET /v<api>/<path> per daemon over one keep-alive connection
    each, interleaved; after warm-up the listing must hold `expect` items."""
    conns = {k: daemons.UnixHTTPConnection(d.sock) for k, d in ds.items()}
    urls = {k: f"/v{d.api_version}/{path}" for k, d in ds.items()}
    lat: dict[str, list[float]] = {k: [] for k in ds}
    try:
        for kind, conn in conns.items():
            for _ in range(warmup):
                body = api_get(conn, urls[kind], kind)
            if len(json.loads(body)) != expect:
                raise BenchError(f"{kind}: {urls[kind]} did not list {expect} items")
        for i in range(calls):
            for kind in interleaved(list(ds), i):
                t0 = time.perf_counter()
                api_get(conns[kind], urls[kind], kind)
                lat[kind].append(time.perf_counter() - t0)
    finally:
        for conn in conns.values():
            conn.close()
    return lat, urls


def save_results(results: Any, name: str) -> str:
    """Write a bench's results to bench/results/<time>-<name>.json; its path."""
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, time.strftime("%Y%m%d-%H%M%S") + f"-{name}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    return path
