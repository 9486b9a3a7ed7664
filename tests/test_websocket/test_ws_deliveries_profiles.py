"""The chat scenarios (profiles/chat-*.conf) are valid Locust config files for locustfiles/chat.py, read by
Locust's own parser with the locustfile's flags registered, and their thresholds tables load."""

from __future__ import annotations

import importlib.util
import re
import sys
from typing import Any

import pytest
from locust.argument_parser import parse_options

import locust_ext.plugin  # noqa: F401  (registers the suite's flags)
from locust_ext.thresholds import load_thresholds
from tests.support import REPO_ROOT

PROFILES = REPO_ROOT / "profiles"
SCENARIOS = ("live-event", "flash-sale", "iot")


@pytest.fixture(scope="module", autouse=True)
def chat_flags() -> None:
    """Import locustfiles/chat.py as Locust does (its folder first on the path), registering its flags."""
    sys.path.insert(0, str(REPO_ROOT / "locustfiles"))
    try:
        spec = importlib.util.spec_from_file_location("chat_profile_check", REPO_ROOT / "locustfiles" / "chat.py")
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    finally:
        sys.path.remove(str(REPO_ROOT / "locustfiles"))


def read(name: str) -> Any:
    return parse_options(args=["--config", str(PROFILES / f"chat-{name}.conf")])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_parses_and_its_thresholds_load(scenario: str) -> None:
    options = read(scenario)
    assert options.locustfile == "locustfiles/chat.py" and options.headless
    assert options.thresholds == f"profiles/chat-{scenario}.yaml"
    spec = load_thresholds(REPO_ROOT / options.thresholds)
    assert any(rule.selector.pattern == "deliver" for rule in spec.rules)
    comment = (PROFILES / f"chat-{scenario}.conf").read_text().splitlines()[0]
    figure = re.search(r"(\d[\d,]*) (?:users|connections)", comment)
    assert figure is not None and options.num_users == int(figure.group(1).replace(",", "")), comment


def test_the_scenarios_differ_as_described() -> None:
    live, flash, iot = (read(name) for name in SCENARIOS)
    assert (
        live.chat_publishers * live.num_users <= 20 < live.num_users / live.chat_rooms
    )  # few publishers, many listeners
    assert flash.spawn_rate == flash.num_users and flash.chat_rooms == 1  # everyone joins in one burst
    assert iot.num_users > live.num_users and iot.chat_rate * 10 < 1  # many connections, rare messages
