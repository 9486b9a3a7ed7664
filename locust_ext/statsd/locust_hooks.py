"""Locust wiring of the StatsD mirror: the ``--statsd-*`` flags, and a mirror started for an Environment."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from locust.env import Environment

from locust_ext.statsd.mirror import TAG_STYLES, MirrorConfig, StatsdMirror
from locust_ext.statsd.sender import DatagramBatcher, StatsdAddressError, resolve

__all__ = ["add_arguments", "on_init"]

_log = logging.getLogger(__name__)


def _udp_port(text: str) -> int:
    """argparse type: a UDP port one can send to."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port one can send to (1-65535)")
    return value


def _sample_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1]")
    return value


def add_arguments(parser: Any, **_: Any) -> None:
    """The mirror's flags. Precedence: command line, LOCUST_STATSD_*, config file, STATSD_HOST/STATSD_PORT."""
    group = parser.add_argument_group("StatsD mirror", "send request timers/counters and run gauges to StatsD")
    group.add_argument(
        "--statsd-host",
        env_var="LOCUST_STATSD_HOST",
        default=os.environ.get("STATSD_HOST") or None,
        help="StatsD host; the mirror is off without it (also STATSD_HOST)",
    )
    group.add_argument(
        "--statsd-port",
        env_var="LOCUST_STATSD_PORT",
        type=_udp_port,
        default=os.environ.get("STATSD_PORT") or "8125",
        help="StatsD UDP port (default 8125; also STATSD_PORT)",
    )
    group.add_argument(
        "--statsd-prefix",
        env_var="LOCUST_STATSD_PREFIX",
        default="locust",
        help="first segments of every metric name (default locust)",
    )
    group.add_argument(
        "--statsd-tags",
        env_var="LOCUST_STATSD_TAGS",
        choices=TAG_STYLES,
        default="none",
        help="none: type and name in the metric path; dogstatsd (|#k:v) or graphite (;k=v) tags instead",
    )
    group.add_argument(
        "--statsd-sample-rate",
        env_var="LOCUST_STATSD_SAMPLE_RATE",
        type=_sample_rate,
        default=1.0,
        help="fraction of request events sent, in (0, 1] (default 1.0)",
    )


def on_init(environment: Environment, **_: Any) -> None:
    """Start a mirror for this Environment when --statsd-host is set; a host that does not resolve is
    logged once and leaves the mirror off."""
    options = environment.parsed_options
    host = getattr(options, "statsd_host", None)
    if not host:
        return
    assert options is not None
    config = MirrorConfig(
        host, options.statsd_port, options.statsd_prefix, options.statsd_tags, options.statsd_sample_rate
    )
    try:
        family, address = resolve(config.host, config.port)
    except StatsdAddressError as exc:
        _log.warning("StatsD mirror off: %s", exc)
        return
    StatsdMirror(environment, config, DatagramBatcher(family, address)).start()
