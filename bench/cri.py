#!/usr/bin/env python3
"""CRI benchmarks: our CRI server against containerd 1.6's CRI plugin, in one run.

Both sides run on this machine at the same time and are driven by the same unmodified
clients from the CRI kit (/work/shared/cri: crictl, critest, run.sh):

  reference  /work/shared/cri/anchor-containerd.sh start: Debian's containerd 1.6 with its
             CRI plugin, runc, overlayfs, a CNI bridge (bridge + host-local + portmap +
             loopback) and a private docker-registry holding the kit's image stand-ins;
             here with a state dir under the scratch root and a registry port of its own.
  ours       `python -m dockerd_py --cri-socket ...` on private roots, pulling the same
             stand-ins from the same registry (registry-hosts mirrors), with the same CNI
             plugin chain in a conflist of its own (own bridge name, subnet, IPAM dir).

  pod        --reps (10) times, interleaved (ours, ref, ref, ours, ...): `crictl runp
             pod.json`, `crictl create POD ctr.json pod.json`, `crictl start CTR` of a
             one-container pod (busybox `sleep 3600`, a pod IP from CNI), wall time of each
             CLI process and their sum; then (untimed) `crictl stopp` + `crictl rmp`.
             The sandbox image and busybox are pulled beforehand (untimed), so the figures
             are runtime work, not pulls. Reported: mean and median of the sum.
  grpc       the same three calls (RunPodSandbox, CreateContainer, StartContainer) made
             straight over gRPC from this process on one kept channel, --reps times,
             interleaved: the servers' own time, without crictl's process start-up
             (about 20-40 ms per crictl call on this machine, the same for both).
  before     with --before REPO: a third server, our daemon from another checkout (the
             code before a change), measured in the same run beside the two others.
  critest    --critest-reps (1) full runs of critest (run.sh) against each socket, total
             wall time; passed/failed/skipped counts are recorded too.

Ratios are ours / reference (time: lower is better, < 1.00 means ours is faster).
Everything is removed at the end: pods (`crictl rmp -fa`, CNI DEL), our daemon and its
roots, our bridge, CNI IPAM state, iptables chains made during the run; the reference with
`anchor-containerd.sh stop`. Usage: python bench/run.py --only cri [--reps N]
or python bench/cri.py [--reps N] [--critest-reps N].
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import daemons  # noqa: E402
import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

sys.path.insert(0, daemons.REPO)
from common import BenchError, interleaved, save_results  # noqa: E402

from dockerd_py.protos.cri import api_pb2 as api  # noqa: E402
from dockerd_py.protos.cri import api_pb2_grpc as api_grpc  # noqa: E402

KIT = os.environ.get("CRI_KIT", "/work/shared/cri")
CRICTL = os.path.join(KIT, "crictl")
ANCHOR = os.path.join(KIT, "anchor-containerd.sh")
MIRRORED = ("registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io")
PAUSE = "registry.k8s.io/pause:3.9"
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chains() -> set[tuple[str, str]]:
    """(table, chain) of every iptables chain in nat and filter."""
    out = set()
    for table in ("nat", "filter"):
        p = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        out |= {(table, line.split()[1]) for line in p.stdout.splitlines()
                if line.startswith("-N ")}
    return out


def drop_chains(new: set[tuple[str, str]], networks: list[str]) -> list[str]:
    """Delete the CNI chains made during the run that are ours: every rule in them names
    one of our CNI networks (bridge's and portmap's comments), or there is none left
    (portmap's shared chains, once no pod uses them). Another user's chains, also new,
    are left alone. Jumps to a chain go first; returns the names."""
    done = []
    marks = [f'name: \\"{n}\\"' for n in networks] + [f'name: "{n}"' for n in networks]
    for table, chain in sorted(new):
        if not chain.startswith("CNI-"):
            continue
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True,
                               text=True).stdout.splitlines()
        own = [r for r in rules if r.startswith(f"-A {chain} ")]
        if not all(any(m in r for m in marks) for r in own):
            continue
        for rule in rules:
            if re.search(rf"-j {re.escape(chain)}( |$)", rule) and rule.startswith("-A "):
                subprocess.run(["iptables", "-t", table, "-D", *rule.split()[1:]],
                               capture_output=True)
        subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
        done.append(f"{table}/{chain}")
    return done


class CriDaemon(daemons.Daemon):
    """Our daemon serving CRI, with a bridge, pools, CNI conflist and mirrors of its own."""

    registry = ""
    repo = daemons.REPO   # the source tree it runs from (--before: another checkout)

    @property
    def cri_sock(self) -> str:
        return os.path.join(self.dir, "cri.sock")

    @property
    def bridge(self) -> str:
        return f"dcb{self.kind[:4]}{os.getpid() % 1000}"

    @property
    def network(self) -> str:
        return f"crib-{(os.getpid() + (7 if self.kind == 'before' else 0)) % 200}"

    @property
    def ipam_dir(self) -> str:
        return os.path.join(self.dir, "cni", "ipam")

    def start(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        tag = (os.getpid() + (7 if self.kind == "before" else 0)) % 200
        conf_dir = os.path.join(self.dir, "cni", "net.d")
        os.makedirs(conf_dir)
        with open(os.path.join(conf_dir, "10-bench.conflist"), "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": self.network, "plugins": [
                {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": True,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": self.ipam_dir,
                          "routes": [{"dst": "0.0.0.0/0"}],
                          "ranges": [[{"subnet": f"10.{90 + tag % 30}.{tag}.0/24"}]]}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"}]}, f)
        mirror = [f"http://{self.registry}"]
        config = os.path.join(self.dir, "daemon.json")
        with open(config, "w") as f:
            json.dump({"bridge": f"dpycri{tag}", "bip": f"10.{30 + tag % 30}.{tag}.1/24",
                       "default-address-pools": [{"base": f"10.{60 + tag % 30}.0.0/16",
                                                  "size": 24}],
                       "registry-hosts": {r: {"mirrors": mirror} for r in MIRRORED},
                       "cri": {"cni-conf-dir": conf_dir, "cni-bin-dir": "/usr/lib/cni"}}, f)
        self.argv = [sys.executable, "-m", "dockerd_py", "-H", f"unix://{self.sock}",
                     "--data-root", os.path.join(self.dir, "data"),
                     "--exec-root", os.path.join(self.dir, "exec"),
                     "--pidfile", os.path.join(self.dir, "pid"), "--config-file", config,
                     "--cri-socket", self.cri_sock]
        env = dict(os.environ)
        env["PYTHONPATH"] = self.repo + (os.pathsep + env["PYTHONPATH"]
                                         if env.get("PYTHONPATH") else "")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, cwd=self.repo, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)


class Crictl:
    """crictl pointed at one CRI socket through a config file of its own."""

    def __init__(self, kind: str, sock: str, config_dir: str) -> None:
        self.kind, self.sock = kind, sock
        self.config = os.path.join(config_dir, f"crictl-{kind}.yaml")
        with open(self.config, "w") as f:
            f.write(f"runtime-endpoint: unix://{sock}\nimage-endpoint: unix://{sock}\n"
                    "timeout: 60\n")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([CRICTL, "--config", self.config, *args], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=180)
        if check and p.returncode != 0:
            raise BenchError(f"{self.kind}: crictl {' '.join(args)} failed ({p.returncode}): "
                             f"{p.stderr.strip()}")
        return p

    def timed(self, *args: str) -> tuple[float, str]:
        t0 = time.perf_counter()
        p = self.run(*args)
        return time.perf_counter() - t0, p.stdout.strip()


def write_specs(root: str, rep: int, kind: str) -> tuple[str, str]:
    """pod.json and ctr.json for one repetition (a unique pod name each)."""
    pod = {"metadata": {"name": f"bench-{kind}-{rep}", "namespace": "bench",
                        "uid": f"bench-{kind}-{rep}-{os.getpid()}", "attempt": 0},
           "log_directory": os.path.join(root, "logs", f"{kind}-{rep}"),
           "linux": {"security_context": {"namespace_options": {"network": 0}}}}
    ctr = {"metadata": {"name": "sleeper"}, "image": {"image": BUSYBOX},
           "command": ["sleep", "3600"], "log_path": "sleeper.log", "linux": {}}
    paths = (os.path.join(root, f"pod-{kind}-{rep}.json"),
             os.path.join(root, f"ctr-{kind}-{rep}.json"))
    os.makedirs(pod["log_directory"], exist_ok=True)  # type: ignore[arg-type]
    for path, doc in zip(paths, (pod, ctr), strict=True):
        with open(path, "w") as f:
            json.dump(doc, f)
    return paths


def one_pod(c: Crictl, root: str, rep: int) -> dict[str, float]:
    pod_json, ctr_json = write_specs(root, rep, c.kind)
    t_runp, pod = c.timed("runp", pod_json)
    t_create, ctr = c.timed("create", pod, ctr_json, pod_json)
    t_start, _ = c.timed("start", ctr)
    # Untimed checks that it really ran: the container is running, the pod has an IP.
    state = json.loads(c.run("inspect", ctr).stdout)["status"]["state"]
    ip = json.loads(c.run("inspectp", pod).stdout)["status"]["network"]["ip"]
    if state != "CONTAINER_RUNNING" or not ip:
        raise BenchError(f"{c.kind}: container {state}, pod IP {ip!r}")
    c.run("stopp", pod)
    c.run("rmp", pod)
    return {"runp": t_runp, "create": t_create, "start": t_start,
            "total": t_runp + t_create + t_start}


def bench_pod(cs: dict[str, Crictl], root: str, reps: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in cs}
    for c in cs.values():  # warm-up, untimed: first-use costs (image unpack, caches)
        one_pod(c, root, -1)
    for rep in range(reps):
        for kind in interleaved(list(cs), rep):
            s = one_pod(cs[kind], root, rep)
            samples[kind].append(s)
            print(f"  pod rep {rep + 1}/{reps} {kind:<9} runp {s['runp'] * 1e3:5.0f} "
                  f"create {s['create'] * 1e3:5.0f} start {s['start'] * 1e3:5.0f} "
                  f"total {s['total'] * 1e3:5.0f} ms", flush=True)
    return summarize(samples)


def grpc_pod(kind: str, stub: Any, root: str, rep: int) -> dict[str, float]:
    pod_json, ctr_json = write_specs(root, rep, f"g{kind}")
    with open(pod_json) as f:
        pod = json_format.ParseDict(json.load(f), api.PodSandboxConfig())
    with open(ctr_json) as f:
        ctr = json_format.ParseDict(json.load(f), api.ContainerConfig())
    t0 = time.perf_counter()
    sid = stub.RunPodSandbox(api.RunPodSandboxRequest(config=pod), timeout=60).pod_sandbox_id
    t1 = time.perf_counter()
    cid = stub.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=sid, config=ctr, sandbox_config=pod), timeout=60).container_id
    t2 = time.perf_counter()
    stub.StartContainer(api.StartContainerRequest(container_id=cid), timeout=60)
    t3 = time.perf_counter()
    st = stub.ContainerStatus(api.ContainerStatusRequest(container_id=cid), timeout=60)
    if st.status.state != api.CONTAINER_RUNNING:
        raise BenchError(f"{kind}: container {cid} not running over gRPC")
    stub.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sid), timeout=60)
    stub.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sid), timeout=60)
    return {"runp": t1 - t0, "create": t2 - t1, "start": t3 - t2, "total": t3 - t0}


def bench_grpc(cs: dict[str, Crictl], root: str, reps: int) -> dict[str, Any]:
    channels = {k: grpc.insecure_channel(f"unix://{c.sock}") for k, c in cs.items()}
    stubs = {k: api_grpc.RuntimeServiceStub(ch) for k, ch in channels.items()}
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in cs}
    try:
        for kind, stub in stubs.items():  # warm-up, untimed (channel, first use)
            grpc_pod(kind, stub, root, -1)
        for rep in range(reps):
            for kind in interleaved(list(cs), rep):
                s = grpc_pod(kind, stubs[kind], root, rep)
                samples[kind].append(s)
                print(f"  grpc rep {rep + 1}/{reps} {kind:<9} runp {s['runp'] * 1e3:5.0f} "
                      f"create {s['create'] * 1e3:5.0f} start {s['start'] * 1e3:5.0f} "
                      f"total {s['total'] * 1e3:5.0f} ms", flush=True)
    finally:
        for ch in channels.values():
            ch.close()
    return summarize(samples)


def summarize(samples: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, ss in samples.items():
        out[kind] = {step: {"mean_ms": 1e3 * statistics.mean(x[step] for x in ss),
                            "median_ms": 1e3 * statistics.median(x[step] for x in ss)}
                     for step in ("runp", "create", "start", "total")}
        out[kind]["samples_s"] = ss
    return out


def bench_critest(cs: dict[str, Crictl], root: str, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {k: {"wall_s": [], "summary": []} for k in cs}
    for rep in range(reps):
        for kind in interleaved(list(cs), rep):
            res = os.path.join(root, f"critest-{kind}-{rep}")
            env = dict(os.environ, OUT=res)
            t0 = time.perf_counter()
            subprocess.run(["sh", os.path.join(KIT, "run.sh"), cs[kind].sock], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=1800)
            wall = time.perf_counter() - t0
            out[kind]["wall_s"].append(wall)
            summary = critest_counts(os.path.join(res, "report.json"))
            out[kind]["summary"].append(summary)
            print(f"  critest rep {rep + 1}/{reps} {kind:<9} {wall:6.1f} s  {summary}",
                  flush=True)
            cs[kind].run("rmp", "-fa", check=False)  # anything a failed spec left
    for kind in cs:
        out[kind]["median_s"] = statistics.median(out[kind]["wall_s"])
    return out


def critest_counts(report: str) -> dict[str, int]:
    """passed/failed/skipped from ginkgo's JSON report."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    try:
        with open(report) as f:
            suites = json.load(f)
    except (OSError, ValueError):
        return counts
    for suite in suites:
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") != "It":
                continue
            state = spec.get("State", "")
            key = "passed" if state == "passed" else "skipped" if "skip" in state or \
                state == "pending" else "failed"
            counts[key] += 1
    return counts


def run(reps: int, critest_reps: int, before_repo: str = "") -> dict[str, Any]:
    """before_repo: another checkout of dockerd-py (the code before a change), run as a
    third CRI server "before" beside ours and the reference, on roots of its own."""
    for tool in (CRICTL, ANCHOR):
        if not os.access(tool, os.R_OK):
            raise BenchError(f"CRI kit missing: {tool}")
    firewall = chains()
    dset = daemons.DaemonSet([])
    # Not under dset.root: closing the set unmounts everything below its root.
    ctd_dir = tempfile.mkdtemp(prefix="dcri-ctd-", dir="/tmp")
    reg = f"127.0.0.1:{free_port()}"
    anchor_env = dict(os.environ, D=ctd_dir, REG=reg, CRICTL=CRICTL)
    mine = {"ours": CriDaemon("ours", os.path.join(dset.root, "ours"))}
    if before_repo:
        mine["before"] = CriDaemon("before", os.path.join(dset.root, "before"))
        mine["before"].repo = os.path.abspath(before_repo)
    for d in mine.values():
        d.registry = reg
    cs: dict[str, Crictl] = {}
    try:
        with dset:
            print(f"cri: starting the reference (containerd 1.6 CRI, registry {reg}) ...",
                  flush=True)
            p = subprocess.run(["sh", ANCHOR, "start"], env=anchor_env, capture_output=True,
                               text=True, stdin=subprocess.DEVNULL, timeout=600)
            if p.returncode != 0:
                raise BenchError(f"anchor-containerd.sh start failed: {p.stderr.strip()}")
            dset.daemons.update(mine)
            failed = dset.start()
            if failed:
                raise BenchError(f"our daemon(s) failed to start: {failed}")
            cs = {k: Crictl(k, d.cri_sock, dset.root) for k, d in mine.items()}
            cs["reference"] = Crictl("reference", os.path.join(ctd_dir, "containerd.sock"),
                                     dset.root)
            versions = {k: c.run("version").stdout for k, c in cs.items()}
            for c in cs.values():  # untimed pulls
                c.run("pull", PAUSE)
                c.run("pull", BUSYBOX)
            print(f"cri: {reps} x crictl runp + create + start, interleaved", flush=True)
            results: dict[str, Any] = {"versions": versions,
                                       "pod": bench_pod(cs, dset.root, reps)}
            print(f"cri: {reps} x the same over gRPC, interleaved", flush=True)
            results["grpc"] = bench_grpc(cs, dset.root, reps)
            if critest_reps:
                print(f"cri: {critest_reps} x critest against each", flush=True)
                results["critest"] = bench_critest(cs, dset.root, critest_reps)
            results["daemon_cpu_s"] = {k: cpu_seconds(d.pid) for k, d in mine.items()}
            for kind, d in mine.items():
                cs[kind].run("rmp", "-fa", check=False)
                left = [n for n in _walk(d.ipam_dir) if not n.startswith(("last", "lock"))]
                if left:
                    print(f"warning: CNI allocations left by {kind}: {left}",
                          file=sys.stderr)
    finally:
        # dset has stopped ours and removed its roots; the reference is stopped by its
        # own script, which removes its pods, mounts, bridge and CNI-* chains.
        p = subprocess.run(["sh", ANCHOR, "stop"], env=anchor_env, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=300)
        print(f"cri: reference {p.stdout.strip().splitlines()[-1] if p.stdout else ''}",
              flush=True)
        for d in mine.values():
            if os.path.exists(f"/sys/class/net/{d.bridge}"):
                subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)
        dropped = drop_chains(chains() - firewall, [d.network for d in mine.values()])
        if dropped:
            print(f"cri: removed iptables chains made during the run: {dropped}", flush=True)
        others = sorted(f"{t}/{c}" for t, c in chains() - firewall)
        if others:
            print(f"note: iptables chains made during the run and left (not ours, or in "
                  f"use): {others}", file=sys.stderr)
        shutil.rmtree(ctd_dir, ignore_errors=True)
    return results


def _walk(path: str) -> list[str]:
    out = []
    for _, _, files in os.walk(path):
        out.extend(files)
    return out


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(r: dict[str, Any]) -> None:
    pod = r["pod"]
    kinds = [k for k in ("ours", "before") if k in pod]
    head = "".join(f"{k:>9}" for k in kinds)
    ratios = "".join(f"{k + '/ref':>12}" for k in kinds)
    print(f"\n{'CRI benchmark (ms, mean of reps)':34}{head} {'containerd':>11}{ratios}")

    def line(label: str, vals: dict[str, float], ref: float, fmt: str) -> None:
        cols = "".join(format(vals[k], fmt).rjust(9) for k in kinds)
        print(f"{label:34}{cols} {format(ref, fmt):>11}"
              + "".join(f"{vals[k] / ref:12.2f}" for k in kinds))
    for step in ("runp", "create", "start", "total"):
        label = "runp + create + start" if step == "total" else f"crictl {step}"
        line(label, {k: pod[k][step]["mean_ms"] for k in kinds},
             pod["reference"][step]["mean_ms"], ".0f")
    line("runp + create + start (median)", {k: pod[k]["total"]["median_ms"] for k in kinds},
         pod["reference"]["total"]["median_ms"], ".0f")
    g = r.get("grpc")
    if g:
        for step in ("runp", "create", "start", "total"):
            label = {"runp": "gRPC RunPodSandbox", "create": "gRPC CreateContainer",
                     "start": "gRPC StartContainer", "total": "gRPC all three"}[step]
            line(label, {k: g[k][step]["mean_ms"] for k in kinds},
                 g["reference"][step]["mean_ms"], ".0f")
        line("gRPC all three (median)", {k: g[k]["total"]["median_ms"] for k in kinds},
             g["reference"]["total"]["median_ms"], ".0f")
    if "critest" in r:
        c = r["critest"]
        line("critest total (s, median)", {k: c[k]["median_s"] for k in kinds},
             c["reference"]["median_s"], ".1f")
        for kind in c:
            print(f"  critest {kind}: {c[kind]['summary'][-1]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--critest-reps", type=int, default=1)
    ap.add_argument("--before", default="", metavar="REPO",
                    help="also run the dockerd-py checkout at REPO (e.g. a `git worktree` of "
                         "the commit before a change) as a third CRI server")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/cri.py must run as root", file=sys.stderr)
        return 2
    daemons.install_signal_handlers()
    results = run(args.reps, args.critest_reps, args.before)
    report(results)
    print(f"\nresults: {save_results(results, 'cri')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
