"""Can this process hold its users' connections? The open-file budget, checked at start and at every connect.

At start (and whenever the number of WebSocket users asked of this process grows) the preflight compares
it with the open-file limit and the ephemeral port range, and says plainly what to raise and how; the
warning goes to the console and to the web UI's log tab. At every connect, :class:`FdBudget` keeps
``reserve`` descriptors free for Locust itself (its resource monitor opens /proc files, the web UI
accepts sockets), so a run near the limit turns extra connections into ``connect`` failures instead of
killing Locust's greenlets with EMFILE. Nothing here changes a limit: scripts/system_tuning.py does that
when asked.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

from locust_ext import local_ips
from locust_ext.generator import open_fd_count

__all__ = [
    "DEFAULT_FD_RESERVE",
    "FdBudget",
    "capacity_plan",
    "ephemeral_port_range",
    "fd_budget",
    "open_fd_count",
    "preflight_messages",
]

log = logging.getLogger("locust_ext.websocket")

DEFAULT_FD_RESERVE = 100
TUNING_SCRIPT = "scripts/system_tuning.py"
_PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_port_range() -> tuple[int, int] | None:
    """The kernel's (first, last) local port for outgoing connections; None when unknown."""
    try:
        first, last = _PORT_RANGE_FILE.read_text().split()
        return int(first), int(last)
    except (OSError, ValueError):
        return None


class FdBudget:
    """This process's open-file limit less a reserve, shared by every connection of every user.

    ``acquire`` before opening a socket, ``release`` once it is closed. Descriptors opened by anything
    else are counted once, when the budget is first used, and the reserve absorbs later growth.
    """

    def __init__(self, reserve: int = DEFAULT_FD_RESERVE) -> None:
        self.reserve = reserve
        self.in_use = 0
        self._baseline: int | None = None

    @property
    def limit(self) -> int:
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    @property
    def baseline(self) -> int:
        if self._baseline is None:
            self._baseline = max(0, open_fd_count() - self.in_use)
        return self._baseline

    def room(self) -> int:
        """How many more sockets may be opened now."""
        return self.limit - self.reserve - self.baseline - self.in_use

    def acquire(self) -> bool:
        """Take one descriptor's room; False (and nothing taken) when the budget is spent."""
        if self.room() <= 0:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use = max(0, self.in_use - 1)


fd_budget = FdBudget()


def preflight_messages(
    users: int, target: str | None, budget: FdBudget = fd_budget, sources: int | None = None
) -> list[str]:
    """Plain warnings when ``users`` connections (one each) will not fit this process; empty when they do.
    ``sources``: source addresses the connections spread over (default: ``--local-ips``'s, or one)."""
    messages = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = users + budget.baseline + budget.reserve
    if needed > soft:
        how = f"run `ulimit -n {needed}` in the shell that starts Locust"
        if hard != resource.RLIM_INFINITY and needed > hard:
            how = f"the hard limit is {hard}: raise it as root (`sudo python {TUNING_SCRIPT} --apply`), then {how}"
        messages.append(
            f"preflight: the open-file limit {soft} cannot hold {users} WebSocket users in this process "
            f"(needs {needed}: {users} connections + {budget.baseline} already open + {budget.reserve} reserved "
            f"for Locust); connections beyond it will fail as `connect: open-file limit`. To fix: {how}."
        )
    ports = ephemeral_port_range()
    sources = max(1, local_ips.pool.count() if sources is None else sources)
    per_source = ports[1] - ports[0] + 1 if ports is not None else 0
    if ports is not None and users > per_source * sources:
        have = f"{per_source} ports per source address toward {target or 'one target'}"
        if sources > 1:
            have += f", {per_source * sources} over the {sources} addresses of --local-ips"
        messages.append(
            f"preflight: the ephemeral port range {ports[0]}-{ports[1]} gives {have}: fewer than {users} "
            f"connections; connects past them fail as `connect: no free local port`. To fix: bind "
            f"≥ {-(-users // per_source)} source addresses (--local-ips, e.g. 127.0.0.2-127.0.0.9 toward a "
            f'loopback target), or `sudo sysctl -w net.ipv4.ip_local_port_range="1024 65535"` (see {TUNING_SCRIPT}).'
        )
    return messages


#: Descriptors a Locust worker holds besides its connections (its own files, sockets to the master, ...).
WORKER_BASELINE_FILES = 50


def capacity_plan(
    users: int, workers: int, target: str | None, *, files: int, reserve: int, ports: int | None, sources: int
) -> str | None:
    """Whether ``users`` WebSocket users fit ``workers`` processes of ``files`` open files each (less
    ``reserve``) and ``sources`` source addresses of ``ports`` ephemeral ports each; None when they do, else one
    line saying what to add (the run-wide view, for a master or a local run, before load)."""
    per_process = max(1, files - reserve - WORKER_BASELINE_FILES)
    need_workers = -(-users // per_process)
    need_sources = -(-users // ports) if ports else 1
    if need_workers <= workers and need_sources <= sources:
        return None
    wants = [f"≥ {need_workers} workers at {files:,} files each" if need_workers > workers else ""]
    wants.append(f"≥ {need_sources} source addresses toward {target or 'the target'}" if need_sources > sources else "")
    fixes = ["more workers" if need_workers > workers else "", "--local-ips" if need_sources > sources else ""]
    return (
        f"preflight: {users:,} users need {' and '.join(w for w in wants if w)} (this run has {workers} "
        f"worker{'s' if workers != 1 else ''} and {sources} source address{'es' if sources != 1 else ''}); "
        f"add {' and '.join(f for f in fixes if f)}"
    )
