"""The shipped Grafana dashboards as the tests read them: panels, targets, and template variables expanded."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support import REPO_ROOT

__all__ = ["DASHBOARDS", "MONITORING", "expand_variables", "load_dashboard", "panels", "targets", "variable_values"]

MONITORING = REPO_ROOT / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
# Grafana's variable syntaxes: ${name}, ${name:format}, [[name]], $name.
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")


def load_dashboard(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variable_values(board: dict[str, Any]) -> dict[str, str]:
    """Each template variable's current selection as Graphite reads it: one value, or ``{a,b}`` for several
    (Grafana's default multi-value format for Graphite); "All" means every option."""
    values: dict[str, str] = {}
    for variable in board.get("templating", {}).get("list", []):
        current = variable["current"]["value"]
        chosen = current if isinstance(current, list) else [current]
        if chosen == ["$__all"]:
            chosen = [option["value"] for option in variable.get("options", []) if option["value"] != "$__all"]
        values[variable["name"]] = chosen[0] if len(chosen) == 1 else "{" + ",".join(chosen) + "}"
    return values


def expand_variables(expression: str, values: dict[str, str]) -> str:
    """``expression`` with every Grafana variable replaced; KeyError for a variable the dashboard lacks."""
    return _VARIABLE.sub(lambda match: values[next(group for group in match.groups() if group)], expression)


def targets(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, Graphite expression with variables expanded) for every target of every panel."""
    values = variable_values(board)
    for panel in panels(board):
        for target in panel["targets"]:
            yield panel["title"], expand_variables(target["target"], values)
