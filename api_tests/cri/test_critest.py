"""critest (cri-tools v1.36, the CRI validation suite) against our CRI socket, through
the kit's run.sh. The issue's bar is at least 95 passed with at most the two failures
that are artefacts of the offline image stand-ins (containerd 1.6's CRI on this machine:
90 passed, 4 failed, 48 skipped). We reached 99 passed, those 2 failed, 41 skipped; this
test holds that level. Every skip is a feature reported absent that containerd 1.6 also
lacks or this host has not: NRI (no -nri-socket), AppArmor (disabled on the host), user
namespaces, recursive read-only mounts, SupplementalGroupsPolicy, the metrics RPCs, and
the benchmarks critest filters out itself."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ..conftest import Daemon
from ..lifetime import die_with_test_run
from .conftest import KIT

TARGET = 95          # the bar
REACHED = 99         # what this server passes (run of 2026-12-06)
STAND_IN_FAILURES = {
    # a fixed upstream manifest digest the stand-in registry cannot have
    "[k8s.io] Image Manager public image with digest should be pulled and removed "
    "[Conformance]",
    # busybox's sh runs `ls` as a built-in applet: masking /bin/ls is not observed
    "[k8s.io] Security Context bucket runtime should support MaskedPaths",
}


def _name(spec: dict[str, object]) -> str:
    parts = [*(spec.get("ContainerHierarchyTexts") or []), spec.get("LeafNodeText") or ""]
    return " ".join(str(p) for p in parts if p)


def test_critest(cri_daemon: Daemon, cri_dir: Path) -> None:
    out = cri_dir / "critest"
    env = dict(os.environ, OUT=str(out))
    done = subprocess.run(["sh", str(KIT / "run.sh"), cri_daemon.cri_sock],  # type: ignore[attr-defined]
                          env=env, capture_output=True, text=True, timeout=1800,
                          preexec_fn=die_with_test_run)
    report = out / "report.json"
    assert report.exists(), done.stdout + done.stderr
    specs = json.loads(report.read_text())[0]["SpecReports"]
    specs = [s for s in specs if s.get("LeafNodeType") == "It"]
    by_state: dict[str, list[str]] = {}
    for s in specs:
        by_state.setdefault(str(s["State"]), []).append(_name(s))
    passed = len(by_state.get("passed", []))
    failed = set(by_state.get("failed", [])) | set(by_state.get("panicked", []))
    summary = (out / "summary.md").read_text() if (out / "summary.md").exists() else ""
    assert failed <= STAND_IN_FAILURES, summary
    assert passed >= REACHED >= TARGET, summary
