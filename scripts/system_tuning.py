"""Kernel and process limits for many WebSocket connections from one load generator: show them, or apply them.

    python scripts/system_tuning.py            # print current and recommended values, change nothing
    sudo python scripts/system_tuning.py --apply

Without ``--apply`` nothing is changed. ``--apply`` must run as root: it writes the sysctl values now (they
last until reboot) and a limits file for new login sessions; the shell that starts Locust still needs
``ulimit -n`` (or a new login) to pick up the open-file limit.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

__all__ = ["OPEN_FILES", "SYSCTLS", "main"]

#: Open files per process: 10,000+ connections, with room for Locust's own files.
OPEN_FILES = 1_048_576
#: sysctl name -> (recommended value, why).
SYSCTLS: dict[str, tuple[str, str]] = {
    "fs.file-max": ("2097152", "system-wide open files"),
    "fs.nr_open": (str(OPEN_FILES), "ceiling for a process's open-file limit"),
    "net.ipv4.ip_local_port_range": ("1024 65535", "local ports for outgoing connections to one target"),
    "net.ipv4.tcp_tw_reuse": ("1", "reuse TIME_WAIT ports for new outgoing connections"),
    "net.core.somaxconn": ("65535", "accept queue of a listening server"),
    "net.ipv4.tcp_max_syn_backlog": ("65535", "half-open connections during a fast ramp"),
    "net.core.netdev_max_backlog": ("65535", "packets queued on loopback under load"),
}
LIMITS_FILE = Path("/etc/security/limits.d/90-loadtest.conf")


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def current(name: str) -> str:
    try:
        return " ".join(sysctl_path(name).read_text().split())
    except OSError:
        return "unknown"


def already_higher(now: str, recommended: str) -> bool:
    """True for a single number already above the recommendation (a port range or flag is always written)."""
    return now.isdigit() and recommended.isdigit() and int(now) > int(recommended) and " " not in recommended


def report() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"{'setting':<32} {'current':<16} {'recommended':<16} why")
    print(f"{'ulimit -n (soft / hard)':<32} {f'{soft} / {hard}':<16} {OPEN_FILES:<16} open files of this process")
    for name, (value, why) in SYSCTLS.items():
        print(f"{name:<32} {current(name):<16} {value:<16} {why}")
    print(f"\nTo apply (as root): sudo python scripts/system_tuning.py --apply, then `ulimit -n {OPEN_FILES}`")


def apply() -> int:
    if os.geteuid() != 0:
        print("error: --apply changes kernel settings and must run as root (sudo)", file=sys.stderr)
        return 2
    failed = 0
    for name, (value, _) in SYSCTLS.items():
        if already_higher(current(name), value):
            print(f"kept {name} = {current(name)} (not lowered)")
            continue
        try:
            sysctl_path(name).write_text(value + "\n")
            print(f"set {name} = {value}")
        except OSError as exc:
            print(f"error: cannot set {name}: {exc.strerror or exc}", file=sys.stderr)
            failed += 1
    LIMITS_FILE.write_text(f"* soft nofile {OPEN_FILES}\n* hard nofile {OPEN_FILES}\n")
    print(f"wrote {LIMITS_FILE} (new login sessions); in this shell run: ulimit -n {OPEN_FILES}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apply", action="store_true", help="write the recommended values (root only)")
    args = parser.parse_args(argv)
    if args.apply:
        return apply()
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
