"""critest's streaming specs (cri-tools v1.36: exec, attach and port-forward through the
URLs of Exec/Attach/PortForward, as kubelet's clients drive them) against our server;
critest pulls its images through the daemon's registry-hosts mirrors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ..conftest import Daemon
from ..cri.conftest import KIT
from ..lifetime import die_with_test_run


def test_critest_streaming_specs(cri_daemon: Daemon, tmp_path: Path) -> None:
    endpoint = "unix://" + cri_daemon.cri_sock  # type: ignore[attr-defined]
    report = tmp_path / "report.json"
    done = subprocess.run(
        [str(KIT / "critest"), "--runtime-endpoint", endpoint, "--image-endpoint", endpoint,
         "-ginkgo.focus", "Streaming",
         "-ginkgo.no-color", f"-ginkgo.json-report={report}"],
        capture_output=True, text=True, timeout=900, check=False,
        preexec_fn=die_with_test_run)
    specs = [s for suite in json.loads(report.read_text())
             for s in suite.get("SpecReports", []) if s.get("LeafNodeType") == "It"]
    ran = {" ".join(s["ContainerHierarchyTexts"] + [s["LeafNodeText"]]): s["State"]
           for s in specs if s["State"] != "skipped"}
    failed = {name: state for name, state in ran.items() if state != "passed"}
    assert ran and not failed, f"{failed}\n{done.stdout[-4000:]}"
