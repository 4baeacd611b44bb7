"""critest's streaming specs (cri-tools v1.36: exec, attach and port-forward through the
URLs of Exec/Attach/PortForward, as kubelet's clients drive them) against our server.

The images come from the stand-in registry through critest's -registry-prefix, which
keeps an image's path and drops its tag (so nginx is pulled as :latest, tagged here);
the web servers are created under their upstream names, tagged here through the Docker
API (the same image store)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ..conftest import DOCKER_CLI, Daemon
from ..cri.conftest import KIT
from ..lifetime import die_with_test_run


def test_critest_streaming_specs(cri_daemon: Daemon, cri_registry: str, tmp_path: Path) -> None:
    nginx = f"{cri_registry}/e2e-test-images/nginx"
    hostnet = f"{cri_registry}/k8s-staging-cri-tools/hostnet-nginx-amd64:latest"
    for args in (("pull", f"{nginx}:1.14-2"), ("tag", f"{nginx}:1.14-2", f"{nginx}:latest"),
                 ("push", f"{nginx}:latest"),
                 ("tag", f"{nginx}:1.14-2", "registry.k8s.io/e2e-test-images/nginx:1.14-2"),
                 ("pull", hostnet),
                 ("tag", hostnet, "gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest")):
        subprocess.run([DOCKER_CLI, *args], env=cri_daemon.cli_env(), check=True,
                       capture_output=True, timeout=300)
    endpoint = "unix://" + cri_daemon.cri_sock  # type: ignore[attr-defined]
    report = tmp_path / "report.json"
    done = subprocess.run(
        [str(KIT / "critest"), "--runtime-endpoint", endpoint, "--image-endpoint", endpoint,
         "--registry-prefix", cri_registry, "-ginkgo.focus", "Streaming",
         "-ginkgo.no-color", f"-ginkgo.json-report={report}"],
        capture_output=True, text=True, timeout=900, check=False,
        preexec_fn=die_with_test_run)
    specs = [s for suite in json.loads(report.read_text())
             for s in suite.get("SpecReports", []) if s.get("LeafNodeType") == "It"]
    ran = {" ".join(s["ContainerHierarchyTexts"] + [s["LeafNodeText"]]): s["State"]
           for s in specs if s["State"] != "skipped"}
    failed = {name: state for name, state in ran.items() if state != "passed"}
    assert ran and not failed, f"{failed}\n{done.stdout[-4000:]}"
