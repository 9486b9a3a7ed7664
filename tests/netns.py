"""A Linux network namespace a test creates for itself: its own loopback, its own iptables, always removed.

Faults on a namespace's loopback touch nothing else on the machine: a DROP rule there partitions only the
processes started inside it (``ip netns exec``). Creating one needs root (CAP_SYS_ADMIN) and Debian's
``iproute2`` and ``iptables`` (``make system-deps`` installs them); :func:`unavailable_reason` says why a machine
cannot, for a test's skip.

with network_namespace() as ns:
    server = subprocess.Popen(ns.command(["python", "-m", "backends.grpc_server", "--port", "50051"]))
    ns.partition(50051)      # packets to and from the port dropped, no RST
    ns.heal()
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache

__all__ = ["Namespace", "NamespaceError", "network_namespace", "unavailable_reason"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)


class NamespaceError(RuntimeError):
    """An ``ip`` or ``iptables`` command failed; the message carries its stderr."""


@cache
def unavailable_reason() -> str | None:
    """Why no network namespace can be made here (None: it can). Tries once: creates and removes one."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN); run the fault tests as root, as CI does"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"{tool} not found: install Debian's {package} (make system-deps)"
    try:
        with network_namespace() as ns:
            ns.iptables("-S")
    except (OSError, subprocess.SubprocessError, NamespaceError) as exc:
        return f"cannot create a network namespace here: {exc}"
    return None


@dataclass
class Namespace:
    """A network namespace by name, its loopback up. Rules go on INPUT, which every loopback packet crosses."""

    name: str
    _rules: list[list[str]] = field(default_factory=list)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: the process id is the command's own)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def check(self, argv: Sequence[str]) -> str:
        """Run ``argv`` inside the namespace to completion; its stdout (raises with stderr when it fails)."""
        done = _run(*self.command(argv))
        if done.returncode != 0:
            raise NamespaceError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def iptables(self, *rule: str) -> None:
        self.check(["iptables", "-w", *rule])

    def _add(self, *rule: str) -> None:
        self.iptables("-A", "INPUT", *rule)
        self._rules.append(list(rule))

    def _both_ways(self, port: int, address: str, *action: str) -> None:
        self._add("-i", "lo", "-p", "tcp", "-d", address, "--dport", str(port), *action)
        self._add("-i", "lo", "-p", "tcp", "-s", address, "--sport", str(port), *action)

    def partition(self, port: int, address: str = "127.0.0.1") -> None:
        """A silent partition of ``address:port``: every packet to or from it dropped, nothing answered (no RST,
        no ICMP). The server's other loopback addresses (127.0.0.2, ...) stay reachable."""
        self._both_ways(port, address, "-j", "DROP")

    def reset_storm(self, port: int, address: str = "127.0.0.1") -> None:
        """Every packet to or from ``address:port`` answered with a TCP RST: open connections reset, connects
        refused."""
        self._both_ways(port, address, "-j", "REJECT", "--reject-with", "tcp-reset")

    def heal(self) -> None:
        """Remove every rule this object added."""
        while self._rules:
            self.iptables("-D", "INPUT", *self._rules.pop())

    def pids(self) -> list[int]:
        done = _run("ip", "netns", "pids", self.name)
        return [int(pid) for pid in done.stdout.split()]


@contextmanager
def network_namespace() -> Iterator[Namespace]:
    """A fresh namespace for the block; at the end every process still inside is killed and the namespace
    removed, however the block ends."""
    name = f"locust-ext-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    created = _run("ip", "netns", "add", name)
    if created.returncode != 0:
        raise NamespaceError(f"ip netns add: {created.stderr.strip()}")
    ns = Namespace(name)
    try:
        ns.check(["ip", "link", "set", "lo", "up"])
        yield ns
    finally:
        for pid in ns.pids():
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _run("ip", "netns", "delete", name)
