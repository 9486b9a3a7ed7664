"""What several features do to Locust's web UI: list their flags among the start form's custom parameters."""

from __future__ import annotations

from typing import Any

__all__ = ["show_in_web_ui"]


def show_in_web_ui(*actions: Any) -> None:
    """List flags (argparse actions) among the web UI's custom parameters, so a run started from the form can
    change them: Locust's own ``include_in_web_ui=True``, which its argument groups do not accept."""
    for action in actions:
        action.include_in_web_ui = True
