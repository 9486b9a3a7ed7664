"""Read a saved JSON thresholds report as the baseline that relative limits compare with."""

from __future__ import annotations

import json
import math
from pathlib import Path

from locust_ext.thresholds.grading import BaselineLookup
from locust_ext.thresholds.model import ThresholdsFileError
from locust_ext.thresholds.reports import SCHEMA

__all__ = ["load_baseline"]


def load_baseline(path: str | Path) -> BaselineLookup:
    """A lookup of the values a previous run observed, by stats row and metric (whichever rule measured them)."""
    name = str(path)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThresholdsFileError(name, None, "", f"cannot read baseline: {exc.strerror or exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise ThresholdsFileError(name, line, "", f"baseline is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ThresholdsFileError(name, None, "schema", f"not a thresholds JSON report (expected schema {SCHEMA!r})")
    values: dict[tuple[str, str], float] = {}
    for index, result in enumerate(document.get("results") or []):
        try:
            label = f"{result['metric']} {result['stat']}" if result.get("stat") else str(result["metric"])
            observed = result["observed"]
            key = (str(result["entry"]), label)
        except (KeyError, TypeError) as exc:
            raise ThresholdsFileError(name, None, f"results[{index}]", f"malformed result: missing {exc}") from exc
        if isinstance(observed, int | float) and not isinstance(observed, bool) and math.isfinite(observed):
            values[key] = float(observed)

    def lookup(entry: str, metric: str) -> float | None:
        return values.get((entry, metric))

    return lookup
