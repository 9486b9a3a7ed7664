"""Readers for every thresholds report format, each giving the same row shape, and the check that a format's rows
say what the JSON report says (same order, rule, row, metric, observed value within its printed rounding,
outcome and note)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

__all__ = [
    "ReportRow",
    "assert_rows_agree",
    "console_rows",
    "html_rows",
    "junit_rows",
    "markdown_rows",
    "metric_label",
    "tab_rows",
]


@dataclass(frozen=True)
class ReportRow:
    """One result as a format shows it. ``observed`` is the printed text ("12.3 ms", "-"), or for JUnit the
    exact number; ``outcome`` the printed outcome ("FAIL", "WARN (no request matched this rule)")."""

    rule: str
    row: str
    metric: str
    observed: str
    outcome: str
    grade: str


def metric_label(result: dict[str, Any]) -> str:
    return f"{result['metric']} {result['stat']}" if result["stat"] else str(result["metric"])


def _table_row(cells: dict[str, str]) -> ReportRow:
    return ReportRow(cells["rule"], cells["row"], cells["metric"], cells["observed"], cells["outcome"], cells["grade"])


def console_rows(stdout: str) -> list[ReportRow]:
    """The rows of the fixed-width table printed at quitting (columns found from the header's words)."""
    lines = stdout.splitlines()
    top = next(index for index, line in enumerate(lines) if line.startswith("Thresholds PASSED") or
               line.startswith("Thresholds FAILED"))  # fmt: skip
    rule = next(index for index in range(top, len(lines)) if lines[index] and set(lines[index]) == {"-"})
    header = lines[rule + 1]
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    names = header.split()
    rows = []
    for line in lines[rule + 3 :]:
        if set(line) == {"-"}:
            break
        bounds = zip(starts, [*starts[1:], None], strict=True)
        rows.append(_table_row({name: line[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)}))
    return rows


def markdown_rows(text: str) -> list[ReportRow]:
    table = [line for line in text.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].strip("|").split(" | ")]
    return [
        _table_row(dict(zip(header, (cell.strip() for cell in line[2:-2].split(" | ")), strict=True)))
        for line in table[2:]
    ]


class _Cells(HTMLParser):
    """Header cells and body rows of the first thresholds table of a page, with each row's class."""

    def __init__(self) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[tuple[str, list[str]]] = []
        self._cell: list[str] | None = None
        self._in_table = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._done:
            return
        if tag == "table" and ("class", "thresholds") in attrs:
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append((dict(attrs).get("class") or "", []))
        elif self._in_table and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._in_table:
            self._in_table, self._done = False, True
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_rows(page: str) -> list[tuple[str, ReportRow]]:
    """(row class, row) for every body row of the page's thresholds table (standalone or inside Locust's)."""
    parser = _Cells()
    parser.feed(page)
    (_, header), *body = parser.rows
    return [(css, _table_row(dict(zip(header, cells, strict=True)))) for css, cells in body]


def junit_rows(path: Path) -> list[ReportRow]:
    """One row per testcase that is a result (not the abort or worker cases): observed is the exact number."""
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        properties = {prop.get("name"): prop.get("value", "") for prop in case.iter("property")}
        if "observed" not in properties:
            continue
        failure, skipped = case.find("failure"), case.find("skipped")
        if failure is not None:
            outcome = "FAIL" + (f" ({failure.get('message')})" if properties["grade"] == "" else "")
        elif skipped is not None:
            outcome = f"WARN ({skipped.get('message')})"
        else:
            outcome = "PASS"
        rule = (case.get("classname") or "").removeprefix("thresholds.")
        rows.append(ReportRow(rule, case.get("name") or "", "", properties["observed"], outcome, properties["grade"]))
    return rows


def tab_rows(data: list[dict[str, str]]) -> list[ReportRow]:
    """The web UI tab's rows from /stats/requests ``extended_stats``."""
    return [_table_row(row) for row in data]


def _agrees(printed: str, observed: float | None, unit: str) -> bool:
    if observed is None:
        return printed in ("-", "")
    number, _, printed_unit = printed.partition(" ")
    if printed_unit and printed_unit != unit:
        return False
    decimals = len(number.partition(".")[2])
    return abs(float(number) - observed) <= 0.5 * 10**-decimals + 1e-9


def _outcome(result: dict[str, Any]) -> str:
    return result["outcome"].upper() + (f" ({result['note']})" if result["note"] else "")


def assert_rows_agree(fmt: str, rows: list[ReportRow], document: dict[str, Any]) -> None:
    """Every row of ``fmt`` shows the JSON result at the same position."""
    results = document["results"]
    assert len(rows) == len(results), (fmt, len(rows), len(results))
    for index, (row, result) in enumerate(zip(rows, results, strict=True)):
        where = f"{fmt} row {index}: {row} vs {result}"
        label = metric_label(result)
        if fmt == "junit":
            assert row.rule == result["rule"], where
            assert row.row == f"{result['entry'] or result['rule']} {label}", where
            observed = None if row.observed == "" else float(row.observed)
            assert observed == result["observed"], where
        else:
            assert (row.rule, row.row, row.metric) == (result["rule"], result["entry"] or "-", label), where
            assert _agrees(row.observed, result["observed"], result["unit"]), where
        assert row.outcome == _outcome(result) or (fmt == "junit" and row.outcome == "FAIL" and result["grade"]), where
        assert row.grade in (result["grade"] or "-", result["grade"] or ""), where
