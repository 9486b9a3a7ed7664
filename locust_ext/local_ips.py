"""``--local-ips``: the source addresses outgoing connections bind to, taken round-robin per connection.

One source address has one ephemeral port range toward a given target address and port (28,232 ports with
Linux's default 32768-60999), so past that many connections from one machine to one endpoint, connects fail
with ``EADDRNOTAVAIL``. Binding each new connection to the next of several local addresses multiplies the
ports available (k6 calls the same option ``--local-ips``). The spec is a comma-separated list of addresses,
ranges (``127.0.0.2-127.0.0.9``) and CIDR blocks (``127.0.1.0/28``, its host addresses); every address must be
one this host can bind, checked before load. WebSocketUser and GrpcUser on the native transport bind each
user's own connection here (:func:`connect_tcp`); grpcio channels cannot bind a source address, so that
combination is refused at start-up. A connect that finds no free local port is the distinct failure
``no free local port (source ADDRESS)`` instead of the kernel's bare errno.

The pool is process-wide, like the open-file budget: a Locust process has one Environment; workers of a
distributed run receive the flag with the master's spawn message and build their own pool then.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
from collections.abc import Iterator
from typing import Any

from gevent import socket

__all__ = [
    "MAX_ADDRESSES",
    "NoFreeLocalPort",
    "SourceAddresses",
    "connect_tcp",
    "parse_local_ips",
    "pool",
    "port_exhaustion",
]

#: Most addresses one spec may name: far beyond any port need (4096 x 28k ports), and quick to check.
MAX_ADDRESSES = 4096
#: Linux's IP_BIND_ADDRESS_NO_PORT: bind the address now, pick the port at connect time per 4-tuple.
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
#: errnos meaning the kernel found no local port (or address) to connect from.
_EXHAUSTED = frozenset({errno.EADDRNOTAVAIL, errno.EADDRINUSE})

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class NoFreeLocalPort(OSError):
    """A connect found no free local port on its source address (``EADDRNOTAVAIL`` / ``EADDRINUSE``)."""

    def __init__(self, source: str | None) -> None:
        where = f" (source {source})" if source else ""
        super().__init__(errno.EADDRNOTAVAIL, f"no free local port{where}")


def port_exhaustion(exc: BaseException) -> bool:
    """Whether ``exc`` says the kernel had no local port (or address) left for a connect."""
    return isinstance(exc, NoFreeLocalPort) or (isinstance(exc, OSError) and exc.errno in _EXHAUSTED)


def _expand(item: str) -> Iterator[Address]:
    if "/" in item:
        network = ipaddress.ip_network(item, strict=False)
        if network.num_addresses > MAX_ADDRESSES + 2:
            raise ValueError(f"{item} has {network.num_addresses} addresses, more than {MAX_ADDRESSES}")
        hosts: list[Address] = list(network.hosts()) or [network.network_address]
        yield from hosts
        return
    if "-" in item:
        first_text, _, last_text = item.partition("-")
        first, last = ipaddress.ip_address(first_text.strip()), ipaddress.ip_address(last_text.strip())
        if first.version != last.version or int(last) < int(first):
            raise ValueError(f"range {item}: the last address must follow the first, in the same family")
        count = int(last) - int(first) + 1
        if count > MAX_ADDRESSES:
            raise ValueError(f"range {item} has {count} addresses, more than {MAX_ADDRESSES}")
        for value in range(int(first), int(last) + 1):
            yield ipaddress.ip_address(value) if first.version == 4 else ipaddress.IPv6Address(value)
        return
    yield ipaddress.ip_address(item)


def _bindable(address: Address) -> bool:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            if family == socket.AF_INET:
                probe.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def parse_local_ips(spec: str) -> list[str]:
    """The addresses ``spec`` names, in order, each once; ``ValueError`` with one line naming what is wrong
    (a malformed item, a range too large, an address this host cannot bind)."""
    addresses: list[str] = []
    seen: set[str] = set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        try:
            expanded = list(_expand(item))
        except ValueError as exc:
            text = str(exc)
            raise ValueError(f"--local-ips: {text}" if item in text else f"--local-ips {item!r}: {text}") from None
        for address in expanded:
            text = str(address)
            if text not in seen:
                seen.add(text)
                addresses.append(text)
        if len(addresses) > MAX_ADDRESSES:
            raise ValueError(f"--local-ips names {len(addresses)}+ addresses, more than {MAX_ADDRESSES}")
    if not addresses:
        raise ValueError(f"--local-ips {spec!r}: no address")
    for text in addresses:
        if not _bindable(ipaddress.ip_address(text)):
            raise ValueError(f"--local-ips: {text} is not an address of this host (cannot bind it)")
    return addresses


class SourceAddresses:
    """The configured source addresses, per address family, each handed out in turn (one per connection)."""

    def __init__(self) -> None:
        self.spec: str | None = None
        self._by_family: dict[int, list[str]] = {}
        self._turns: dict[int, Iterator[str]] = {}

    def configure(self, spec: str | None) -> None:
        """Use the addresses of ``spec`` (None or "": bind nothing); ValueError as :func:`parse_local_ips`."""
        if spec == self.spec:
            return
        by_family: dict[int, list[str]] = {}
        for text in parse_local_ips(spec) if spec else []:
            family = socket.AF_INET if ipaddress.ip_address(text).version == 4 else socket.AF_INET6
            by_family.setdefault(family, []).append(text)
        self.spec = spec or None
        self._by_family = by_family
        self._turns = {family: itertools.cycle(addresses) for family, addresses in by_family.items()}

    @property
    def configured(self) -> bool:
        return bool(self._by_family)

    def count(self, family: int | None = None) -> int:
        """How many addresses (of ``family``, or all)."""
        if family is None:
            return sum(len(addresses) for addresses in self._by_family.values())
        return len(self._by_family.get(family, ()))

    def next_for(self, family: int) -> str | None:
        """The next source address of ``family``; None when none is configured at all."""
        if not self._by_family:
            return None
        turn = self._turns.get(family)
        if turn is None:
            raise OSError(errno.EAFNOSUPPORT, "--local-ips has no address of the target's family")
        return next(turn)


#: This process's source addresses (``--local-ips``).
pool = SourceAddresses()


def connect_tcp(address: tuple[str, int], timeout: float | None, addresses: SourceAddresses = pool) -> socket.socket:
    """A TCP connection to ``address`` (host, port), from the next source address when any are configured.

    Like ``socket.create_connection`` (plus TCP_NODELAY); a connect without a free local port raises
    :class:`NoFreeLocalPort`.
    """
    sock = _connect(address, timeout, addresses)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _connect(address: tuple[str, int], timeout: float | None, addresses: SourceAddresses) -> socket.socket:
    host, port = address
    error: OSError | None = None
    for family, kind, proto, target in _targets(host, port):
        source = None
        if addresses.configured:
            if addresses.count(family) == 0:
                error = OSError(errno.EAFNOSUPPORT, "--local-ips has no address of the target's family")
                continue
            source = addresses.next_for(family)
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            if source is not None:
                if family == socket.AF_INET:
                    sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((source, 0))
            sock.connect(target)
        except OSError as exc:
            sock.close()
            if port_exhaustion(exc):
                raise NoFreeLocalPort(source) from None
            error = exc
            continue
        return sock
    assert error is not None
    raise error


def _targets(host: str, port: int) -> list[tuple[int, int, int, tuple[Any, ...]]]:
    """Where ``host`` is, as ``getaddrinfo`` says; a numeric address is answered here, without the trip through
    gevent's resolver thread that ``getaddrinfo`` makes for every connect (a share of each connect's CPU)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and not (ip.version == 6 and ip.scope_id):
        if ip.version == 4:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, (str(ip), port))]
        return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, (str(ip), port, 0, 0))]
    return [
        (family, kind, proto, target)
        for family, kind, proto, _, target in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ]
