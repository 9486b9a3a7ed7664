"""Turn a :class:`Verdict` into the gate's outputs: the JSON document, JUnit XML, Markdown, HTML, console table.

The JSON document (``SCHEMA``) is the stable, documented form; the other formats present the same rows.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from locust_ext.thresholds.grading import MetricResult, Verdict
from locust_ext.thresholds.report_targets import ReportTarget

__all__ = [
    "SCHEMA",
    "SECTION_ID",
    "RunInfo",
    "console_table",
    "embed_verdict",
    "lost_worker_lines",
    "render_report",
    "result_cells",
    "table_rows",
    "verdict_document",
    "verdict_section",
    "write_reports",
]

#: Identifies the JSON report layout; bumped only on incompatible changes.
SCHEMA = "locust-ext/thresholds-report/v1"


@dataclass(frozen=True)
class RunInfo:
    """What run the verdict is about."""

    locustfile: str | None
    host: str | None
    mode: str  # "local" | "master"
    workers: int
    started_at: str | None
    finished_at: str
    duration_s: float | None
    thresholds_file: str
    baseline_file: str | None
    #: Each load-generating process's health figures (see locust_ext.generator.FIGURES), when measured.
    generator: dict[str, dict[str, float | None]] | None = None


def _comparator(result: MetricResult) -> str:
    return ">=" if result.metric.metric.higher_is_better else "<="


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _result_document(verdict: Verdict, result: MetricResult) -> dict[str, Any]:
    metric = result.metric
    return {
        "rule": result.rule,
        "selector": result.selector,
        "type": result.rule_type,
        "entry": result.entry,
        "metric": metric.metric.value,
        "stat": metric.stat,
        "unit": metric.unit,
        "higher_is_better": metric.metric.higher_is_better,
        "requests": result.requests,
        "observed": result.observed,
        "limits": result.limits,
        "baseline": None if result.baseline is None else {"value": result.baseline, "limits": result.baseline_limits},
        "grade": result.grade,
        "grade_index": None if result.grade is None else verdict.spec.all_grades.index(result.grade),
        "outcome": result.outcome,
        "note": result.note,
    }


def verdict_document(verdict: Verdict, run: RunInfo | None) -> dict[str, Any]:
    """The JSON report: run info, then one result per rule x stats row x metric (schema ``SCHEMA``)."""
    spec = verdict.spec
    return {
        "schema": SCHEMA,
        "final": verdict.final,
        "run": asdict(run) if run else None,
        "grades": list(spec.all_grades),
        "fail_at": spec.fail_at,
        "strict": spec.strict,
        "passed": verdict.passed,
        "aborted": asdict(verdict.aborted) if verdict.aborted else None,
        "lost_workers": [{**asdict(worker), "message": worker.message} for worker in verdict.lost_workers],
        "lost_workers_policy": "fail" if verdict.lost_workers_fail else "warn",
        "summary": verdict.counts,
        "results": [_result_document(verdict, result) for result in verdict.results],
    }


def _limit_cells(verdict: Verdict, result: MetricResult) -> list[tuple[str, str]]:
    """(grade, "<= 25.0") per listed grade, from the baseline-derived limits when the result has them."""
    cells = []
    for grade in verdict.spec.grades:
        limit = (result.baseline_limits or {}).get(grade, result.limits.get(grade))
        cells.append((grade, f"{_comparator(result)} {_number(limit)}" if limit is not None else ""))
    return cells


def _observed_cell(result: MetricResult) -> str:
    return f"{_number(result.observed)} {result.metric.unit}" if result.observed is not None else "-"


def result_cells(verdict: Verdict, result: MetricResult) -> list[str]:
    """One result's table row: rule, row, metric, observed, one limit per grade, grade, outcome (with note)."""
    outcome = result.outcome.upper() + (f" ({result.note})" if result.note else "")
    limits = [cell for _, cell in _limit_cells(verdict, result)]
    return [result.rule, result.entry or "-", result.metric.label, _observed_cell(result), *limits,
            result.grade or "-", outcome]  # fmt: skip


def table_rows(verdict: Verdict) -> tuple[list[str], list[list[str]]]:
    """Header and one row per result, in the verdict's report order (failures first, rules no request
    matched last): the console, Markdown and HTML tables and the web UI tab."""
    header = ["rule", "row", "metric", "observed", *verdict.spec.grades, "grade", "outcome"]
    return header, [result_cells(verdict, result) for result in verdict.results]


def _headline(verdict: Verdict) -> str:
    counts = verdict.counts
    state = "PASSED" if verdict.passed else "FAILED"
    text = f"Thresholds {state}: {counts['pass']} pass, {counts['fail']} fail, {counts['warn']} warn"
    if verdict.aborted:
        text += f"; run aborted: {verdict.aborted.message}"
    if verdict.lost_workers:
        count = len(verdict.lost_workers)
        text += f"; {count} worker{'s' if count != 1 else ''} lost" + (
            "" if verdict.lost_workers_fail else " (warning)"
        )
    return text


def lost_worker_lines(verdict: Verdict) -> list[str]:
    """One line per lost worker: whether it fails the gate, and what happened."""
    status = "FAIL" if verdict.lost_workers_fail else "WARN"
    return [f"Lost worker ({status}): {worker.message}" for worker in verdict.lost_workers]


def console_table(verdict: Verdict) -> str:
    """A fixed-width text table with a headline, for the end of a run."""
    header, rows = table_rows(verdict)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    rule = "-" * len(line(header))
    return "\n".join(
        [_headline(verdict), *lost_worker_lines(verdict), rule, line(header), rule, *(line(row) for row in rows), rule]
    )


def _markdown(verdict: Verdict) -> str:
    header, rows = table_rows(verdict)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    lost = [f"- **{text}**" for text in lost_worker_lines(verdict)]
    return "\n".join(
        [
            f"## {_headline(verdict)}",
            "",
            *lost,
            *([""] if lost else []),
            line(header),
            line(["---"] * len(header)),
            *(line(r) for r in rows),
            "",
        ]
    )


def _grade_colour(verdict: Verdict, grade: str) -> str:
    """Green for the best grade through amber to red for the worst."""
    grades = verdict.spec.all_grades
    hue = 120 - 120 * grades.index(grade) / max(len(grades) - 1, 1)
    return f"hsl({hue:.0f}, 70%, 80%)"


#: The id of the verdict's section, in the standalone report and inside Locust's own HTML report.
SECTION_ID = "locust-ext-thresholds"
#: Styles scoped to the section, so they leave the page around it (Locust's report) alone.
_SECTION_STYLE = f"""
#{SECTION_ID} {{ font-family: Roboto, Helvetica, Arial, sans-serif; font-size: 14px; margin: 1.5em 24px;
  color: #222; overflow-x: auto; }}
#{SECTION_ID} table {{ border-collapse: collapse; }}
#{SECTION_ID} th, #{SECTION_ID} td {{ border: 1px solid #999; padding: 0.3em 0.6em; text-align: left;
  white-space: nowrap; }}
#{SECTION_ID} td:last-child {{ white-space: normal; min-width: 16em; }}
#{SECTION_ID} h1 {{ font-size: 1.6em; }}
#{SECTION_ID} h1.passed {{ color: #1a7f37; }} #{SECTION_ID} h1.failed {{ color: #c62828; }}
#{SECTION_ID} tr.fail td:last-child, #{SECTION_ID} p.lost {{ color: #c62828; font-weight: bold; }}
"""


def verdict_section(verdict: Verdict, run: RunInfo | None) -> str:
    """The verdict as one self-contained HTML ``<section>`` (headline, run, lost workers, graded table with
    grades coloured green to red): the standalone HTML report's body, and what goes into Locust's report."""
    header, _ = table_rows(verdict)
    grade_column = header.index("grade")
    body = []
    for result in verdict.results:
        cells = []
        for index, cell in enumerate(result_cells(verdict, result)):
            style = ""
            if index == grade_column and result.grade is not None:
                style = f' style="background:{_grade_colour(verdict, result.grade)}"'
            elif index == grade_column + 1 and result.outcome == "warn":
                style = ' style="background:#eee"'
            cells.append(f"<td{style}>{html.escape(cell)}</td>")
        body.append(f'<tr class="{result.outcome}">{"".join(cells)}</tr>')
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    state = "passed" if verdict.passed else "failed"
    run_line = ""
    if run is not None:
        run_line = html.escape(
            f"{run.locustfile or ''} against {run.host or '(default host)'}, {run.mode} mode, "
            f"{run.workers} workers, finished {run.finished_at}, thresholds {run.thresholds_file}"
        )
    lost = "".join(f'<p class="lost">{html.escape(text)}</p>' for text in lost_worker_lines(verdict))
    return f"""<section id="{SECTION_ID}"><style>{_SECTION_STYLE}</style>
<h1 class="{state}">{html.escape(_headline(verdict))}</h1>
<p>{run_line}</p>{lost}
<table class="thresholds"><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table></section>
"""


def _html(verdict: Verdict, run: RunInfo | None) -> str:
    state = "passed" if verdict.passed else "failed"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Thresholds {state}</title></head>
<body>{verdict_section(verdict, run)}</body></html>
"""


def embed_verdict(page: str, verdict: Verdict, run: RunInfo | None) -> str:
    """Locust's HTML report ``page`` with the verdict's section at the top of its body (before the element the
    report's script renders into), replacing a section embedded earlier."""
    section = verdict_section(verdict, run)
    old_start = page.find(f'<section id="{SECTION_ID}">')
    if old_start != -1:
        old_end = page.index("</section>", old_start) + len("</section>")
        return page[:old_start] + section + page[old_end:].removeprefix("\n")
    anchor = page.rfind('<div id="root">')
    if anchor == -1:
        anchor = page.rfind("</body>")
    if anchor == -1:
        return page + section
    return page[:anchor] + section + page[anchor:]


def _junit(verdict: Verdict, run: RunInfo | None) -> str:
    """One testcase per rule x row x metric, with its observed value, unit and grade as properties; warnings
    are skipped tests, failures carry observed vs limit. A lost worker is a ``thresholds.workers`` case
    (failed, or skipped when lost workers only warn); an abort adds a failing ``abort_on_fail`` case."""
    counts = verdict.counts
    lost = len(verdict.lost_workers)
    failures = counts["fail"] + (1 if verdict.aborted else 0) + (lost if verdict.lost_workers_fail else 0)
    skipped = counts["warn"] + (0 if verdict.lost_workers_fail else lost)
    time_s = f"{run.duration_s:.3f}" if run and run.duration_s is not None else "0"
    tests = str(len(verdict.results) + (1 if verdict.aborted else 0) + lost)
    suites = ET.Element("testsuites", name="thresholds", tests=tests, failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"thresholds {verdict.spec.path}",
        tests=tests,
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=time_s,
    )
    for result in verdict.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"thresholds.{result.rule}",
            name=f"{result.entry or result.rule} {result.metric.label}",
            time="0",
        )
        properties = ET.SubElement(case, "properties")
        observed = "" if result.observed is None else repr(result.observed)
        for key, value in (("observed", observed), ("unit", result.metric.unit), ("grade", result.grade or "")):
            ET.SubElement(properties, "property", name=key, value=value)
        if result.outcome == "fail":
            limits = ", ".join(f"{grade} {cell}" for grade, cell in _limit_cells(verdict, result) if cell)
            message = (
                f"{result.metric.label} observed {_observed_cell(result)}, grade {result.grade} "
                f"(fails at {verdict.spec.fail_at}); limits: {limits or 'none'}"
                if result.grade
                else result.note
            )
            ET.SubElement(case, "failure", message=message, type="threshold").text = message
        elif result.outcome == "warn":
            ET.SubElement(case, "skipped", message=result.note)
    for worker in verdict.lost_workers:
        case = ET.SubElement(suite, "testcase", classname="thresholds.workers", name=f"worker {worker.id}", time="0")
        if verdict.lost_workers_fail:
            ET.SubElement(case, "failure", message=worker.message, type="lost_worker").text = worker.message
        else:
            ET.SubElement(case, "skipped", message=worker.message)
    if verdict.aborted:
        case = ET.SubElement(suite, "testcase", classname="thresholds.abort_on_fail", name="run completed", time="0")
        ET.SubElement(case, "failure", message=verdict.aborted.message, type="aborted").text = verdict.aborted.message
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def render_report(verdict: Verdict, run: RunInfo | None, fmt: str) -> str:
    """The report text in one of the formats ``report_targets.REPORT_FORMATS`` names."""
    if fmt == "json":
        return json.dumps(verdict_document(verdict, run), indent=2) + "\n"
    if fmt == "junit":
        return _junit(verdict, run)
    if fmt == "markdown":
        return _markdown(verdict)
    return _html(verdict, run)


def write_reports(verdict: Verdict, run: RunInfo | None, targets: Sequence[ReportTarget]) -> None:
    """Write one report per target; parent folders are created."""
    for target in targets:
        path = Path(target.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_report(verdict, run, target.format), encoding="utf-8")
