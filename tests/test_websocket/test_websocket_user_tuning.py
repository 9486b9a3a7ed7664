"""scripts/system_tuning.py shows the tuning and changes nothing unless asked with --apply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT


def test_without_apply_it_prints_every_setting_and_changes_nothing() -> None:
    port_range = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    done = subprocess.run(
        [sys.executable, "scripts/system_tuning.py"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0
    for setting in ("ulimit -n", "fs.nr_open", "net.ipv4.ip_local_port_range", "net.core.somaxconn"):
        assert setting in done.stdout
    assert "--apply" in done.stdout
    assert Path("/proc/sys/net/ipv4/ip_local_port_range").read_text() == port_range
